//! The book: the part of the state store the decision reads and the commit guards protect —
//! ledger positions, reservations, rotations, exit locks and the record of recent opens.
//!
//! The slot table is derived from it: a slot is a symbol held by a position, a reservation or a
//! rotation that has freed a slot for its pending plan.

use crate::plan::Plan;
use crate::time::Timestamp;
use crate::types::{PlanId, Side, Symbol};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A position as the executor recorded it (`quantum:position:ledger:{symbol}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerPosition {
    /// Direction.
    pub side: Side,
    /// Size in base units (> 0).
    pub qty: f64,
    /// Average entry price.
    pub entry_price: f64,
    /// Leverage the position runs at.
    pub leverage: u32,
    /// When it was opened.
    pub opened_at: Timestamp,
    /// The score the opening plan carried (rotation compares against it).
    #[serde(default)]
    pub entry_score: Option<f64>,
    /// Commission paid on the fills that opened what is still held (USDT): each close is
    /// charged its share, so that a close's PnL is net of both its fees. 0 where nobody
    /// recorded it (a position another service wrote).
    #[serde(default)]
    pub entry_fees: f64,
}

/// A slot and capital held for a permitted open that has not filled yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// The instrument.
    pub symbol: Symbol,
    /// Direction.
    pub side: Side,
    /// Permitted quantity.
    pub qty: f64,
    /// Permitted notional (USDT) — the capital reserved.
    pub notional: f64,
    /// Leverage of the open.
    pub leverage: u32,
    /// The plan's score, carried to the position when it fills.
    #[serde(default)]
    pub score: Option<f64>,
    /// When the permit was granted.
    pub granted_at: Timestamp,
    /// When the permit (and this reservation) expires.
    pub expires_at: Timestamp,
    /// The permit's fencing token.
    pub fence: u64,
}

/// Where a rotation stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationPhase {
    /// Phase 1 done: the close plan is out; the weakest position still holds its slot.
    AwaitingClose,
    /// The close was permitted (its exit lock taken again for the close's own life); the
    /// weakest position still holds its slot until the close fills. A timeout in this phase
    /// leaves the exit lock to lapse on its own: the close may still reach the exchange.
    ClosePermitted,
    /// The close executed: its slot is held for the pending plan and no other.
    SlotHeld,
}

/// A rotation lock (`quantum:rotation:lock:{plan_id}`): ties a pending open to the close that
/// makes room for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationLock {
    /// The pending plan, kept whole so the governor can re-decide it without upstream.
    pub pending: Plan,
    /// The position being closed.
    pub close_symbol: Symbol,
    /// The close plan published for it.
    pub close_plan_id: PlanId,
    /// When phase 1 happened.
    pub created_at: Timestamp,
    /// When the rotation times out.
    pub expires_at: Timestamp,
    /// Where it stands.
    pub phase: RotationPhase,
}

/// A halt the governor put in place itself (the drawdown halt, the de-risk halt), so that opens
/// are refused with its reason and it can resume by itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halt {
    /// Why (`drawdown_halt`, `account_margin_ratio`).
    pub reason: crate::reason::BlockReason,
    /// When it started.
    pub since: Timestamp,
    /// The numbers behind it.
    pub detail: String,
}

/// An executed close and what it realized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRecord {
    /// The close plan.
    pub plan_id: PlanId,
    /// The instrument.
    pub symbol: Symbol,
    /// When its result was applied.
    pub at: Timestamp,
    /// Realized PnL in USDT, net of the close's fee when the result carried it: negative is a
    /// loss.
    pub pnl: f64,
}

/// An order the executor is about to send, or sent without learning its outcome (a timeout, a
/// 5xx, an answer it could not read). Written *before* the order is sent and removed when its
/// result is applied, so that a crash anywhere in between leaves a record: while it exists the
/// open's reservation is held past its permit (an unknown open counts as open) and the
/// reconciler leaves the symbol alone; once the permit's life is over, the reconciler asks the
/// exchange for the order by its client id and settles the true outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderInDoubt {
    /// The instrument.
    pub symbol: Symbol,
    /// The plan's action, as its wire name (`OPEN_LONG`, `PARTIAL_50`, …).
    pub action: String,
    /// When the record was written (the order is sent after this, never before).
    pub since: Timestamp,
    /// The order is never sent after this moment (its permit's expiry): once the exchange's
    /// request window has passed beyond it, an order the exchange does not know was never placed.
    pub send_deadline: Timestamp,
    /// Why the outcome is not known yet (`about to send`, the last error).
    pub why: String,
}

/// A record in the store that could not be read (another service wrote a malformed ledger
/// hash, a key that is not a symbol, a value that is not a number). It is quarantined, not
/// contagious: only the decisions that need it fail closed — opens on its symbol, or every
/// open when it has none (a record whose scope is unknown) — and it is reported by key and
/// field until it is repaired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptRecord {
    /// The key, without the prefix (`position:ledger:ZZZUSDT`).
    pub key: String,
    /// The field that could not be read, when it is one field.
    pub field: Option<String>,
    /// Its value (shortened, bytes that are not UTF-8 escaped).
    pub value: Option<String>,
    /// What is wrong with it.
    pub problem: String,
    /// The symbol whose opens it blocks; `None`: every open.
    pub symbol: Option<Symbol>,
}

/// One exit lock per symbol (`quantum:exit:lock:{symbol}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitLock {
    /// The plan id holding the exit.
    pub holder: PlanId,
    /// When the lock lapses on its own.
    pub expires_at: Timestamp,
    /// Fencing token of the lock.
    pub fence: u64,
}

/// What holds a slot.
#[derive(Clone, Debug, PartialEq)]
pub enum SlotHolder {
    /// An open position.
    Position,
    /// A permitted open not yet filled (the plan ids holding it).
    Reserved(Vec<PlanId>),
    /// A slot freed by a rotation close and held for this pending plan.
    HeldForRotation(PlanId),
}

/// One occupied slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// The direction the slot is held in.
    pub side: Side,
    /// What holds it.
    pub holder: SlotHolder,
}

/// The store's decision-relevant state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Book {
    /// Positions by symbol.
    pub positions: BTreeMap<Symbol, LedgerPosition>,
    /// Reservations by the plan id that holds them.
    pub reservations: BTreeMap<PlanId, Reservation>,
    /// Rotations by the pending plan's id.
    pub rotations: BTreeMap<PlanId, RotationLock>,
    /// Exit locks by symbol.
    pub exit_locks: BTreeMap<Symbol, ExitLock>,
    /// When each symbol was last opened (cooldown).
    pub last_open_at: BTreeMap<Symbol, Timestamp>,
    /// When recent opens were permitted (rate limits), oldest first.
    pub open_times: Vec<Timestamp>,
    /// Increments with every new reservation: lets a commit prove no other open slipped in.
    pub reservation_seq: u64,
    /// The highest equity seen in each hour of the drawdown window (hour = ms / 3,600,000).
    pub equity_peaks: BTreeMap<i64, f64>,
    /// Why the governor itself put trading into REDUCING, while that holds.
    pub halt: Option<Halt>,
    /// Executed closes of the loss-streak window with their realized PnL, oldest first.
    pub closes: Vec<CloseRecord>,
    /// Orders whose outcome is not known yet, by plan id.
    pub in_doubt: BTreeMap<PlanId, OrderInDoubt>,
    /// A counter per symbol, raised by every change the governor makes to its ledger position:
    /// lets the reconciler prove that the position it compared with the exchange is unchanged.
    pub ledger_versions: BTreeMap<Symbol, u64>,
    /// Records that could not be read, quarantined.
    pub corrupt: Vec<CorruptRecord>,
}

impl Book {
    /// Whether `symbol`'s slot is promised to a rotation (other than `except`'s own): a
    /// rotation is closing it (its slot goes to the rotation's plan), or its slot is held for a
    /// rotation's pending plan. Another open on it can neither count on that slot nor take one
    /// of its own (the table, one slot per symbol, would count one too few), and closing it
    /// frees no slot.
    pub fn slot_promised(&self, symbol: &Symbol, except: Option<&PlanId>) -> bool {
        self.rotations.iter().any(|(pending_id, r)| {
            Some(pending_id) != except
                && (&r.close_symbol == symbol
                    || (r.phase == RotationPhase::SlotHeld && &r.pending.symbol == symbol))
        })
    }

    /// The slot table: every occupied symbol and what holds it.
    pub fn slots(&self) -> BTreeMap<Symbol, Slot> {
        let mut slots: BTreeMap<Symbol, Slot> = BTreeMap::new();
        for (symbol, p) in &self.positions {
            slots.insert(
                symbol.clone(),
                Slot {
                    side: p.side,
                    holder: SlotHolder::Position,
                },
            );
        }
        for (plan_id, r) in &self.reservations {
            let slot = slots.entry(r.symbol.clone()).or_insert(Slot {
                side: r.side,
                holder: SlotHolder::Reserved(Vec::new()),
            });
            if let SlotHolder::Reserved(ids) = &mut slot.holder {
                ids.push(plan_id.clone());
            }
        }
        for (plan_id, rot) in &self.rotations {
            if rot.phase == RotationPhase::SlotHeld {
                let side = match rot.pending.action {
                    crate::plan::Action::Open(side) => side,
                    _ => continue,
                };
                slots.entry(rot.pending.symbol.clone()).or_insert(Slot {
                    side,
                    holder: SlotHolder::HeldForRotation(plan_id.clone()),
                });
            }
        }
        slots
    }

    /// The exit lock on `symbol` if it is still live at `now`.
    pub fn live_exit_lock(&self, symbol: &Symbol, now: Timestamp) -> Option<&ExitLock> {
        self.exit_locks.get(symbol).filter(|l| l.expires_at > now)
    }

    /// Opens permitted strictly after `since` (a sliding window ending now).
    pub fn opens_after(&self, since: Timestamp) -> usize {
        self.open_times.iter().filter(|t| **t > since).count()
    }

    /// Whether an open of `symbol` is permitted and not settled (its reservation) or in doubt:
    /// its fill may still land. A close waits for it: sized from the exchange when sent, it
    /// would take that fill too, and the open's result, booked after it, would leave the ledger
    /// holding what the exchange no longer does.
    pub fn open_in_flight(&self, symbol: &Symbol) -> Option<&PlanId> {
        self.reservations
            .iter()
            .find(|(_, r)| &r.symbol == symbol)
            .map(|(id, _)| id)
            .or_else(|| {
                self.in_doubt
                    .iter()
                    .find(|(_, o)| &o.symbol == symbol && o.action.starts_with("OPEN"))
                    .map(|(id, _)| id)
            })
    }

    /// Whether anything may be changing `symbol`'s position right now: a reservation (an open
    /// permitted, not settled), a live exit lock (a close under way) or an order in doubt. The
    /// reconciler never adopts or releases such a position: the exchange and the ledger may
    /// legitimately disagree until the result lands.
    pub fn in_flight(&self, symbol: &Symbol, now: Timestamp) -> bool {
        self.reservations.values().any(|r| &r.symbol == symbol)
            || self.live_exit_lock(symbol, now).is_some()
            || self.in_doubt.values().any(|o| &o.symbol == symbol)
    }

    /// The quarantined records that an open on `symbol` depends on.
    pub fn corrupt_for<'a>(
        &'a self,
        symbol: &'a Symbol,
    ) -> impl Iterator<Item = &'a CorruptRecord> + 'a {
        self.corrupt
            .iter()
            .filter(move |c| c.symbol.as_ref().is_none_or(|s| s == symbol))
    }

    /// The version of `symbol`'s ledger position (0 before the governor ever changed it).
    pub fn ledger_version(&self, symbol: &Symbol) -> u64 {
        self.ledger_versions.get(symbol).copied().unwrap_or(0)
    }

    /// The rotation whose close plan is `close_plan_id`.
    pub fn rotation_by_close(&self, close_plan_id: &PlanId) -> Option<(&PlanId, &RotationLock)> {
        self.rotations
            .iter()
            .find(|(_, r)| &r.close_plan_id == close_plan_id)
    }
}

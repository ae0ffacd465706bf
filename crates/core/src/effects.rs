//! What a decision asks the store to do (effects) and what must still hold when it does
//! (guards). The store applies all effects of one decision or none: in Redis one Lua script, in
//! the embedded store one critical section. A failed guard means another governor raced this
//! one: re-read and decide again.

use crate::book::{LedgerPosition, OrderInDoubt, Reservation, RotationLock};
use crate::reason::BlockReason;
use crate::snapshot::DecisionRecord;
use crate::time::Timestamp;
use crate::types::{PlanId, Side, Symbol, TradingState};
use serde::Serialize;

/// A permit as written to `quantum:permit:{plan_id}`; the store assigns `fence` at commit.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Permit {
    /// The permitted plan.
    pub plan_id: PlanId,
    /// Its symbol.
    pub symbol: Symbol,
    /// Its action's wire name.
    pub action: String,
    /// Permitted quantity (possibly scaled down).
    pub qty: f64,
    /// Permitted notional in USDT.
    pub notional: f64,
    /// The regime it was granted in.
    pub regime: Option<String>,
    /// Fencing token: strictly increasing per store; 0 until committed.
    pub fence: u64,
    /// Granted at.
    pub granted_at: Timestamp,
    /// Expires at (single use before then).
    pub expires_at: Timestamp,
}

/// A governor event (`quantum:stream:governor.events`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// `PLAN_ALLOWED`, `ROTATION_COMPLETE`, …
    pub event: &'static str,
    /// The plan it is about.
    pub plan_id: PlanId,
    /// The symbol it is about (`None`: the account as a whole, written as an empty symbol).
    #[serde(serialize_with = "symbol_or_empty")]
    pub symbol: Option<Symbol>,
    /// When.
    pub ts: Timestamp,
    /// The event's own fields.
    pub fields: Vec<(&'static str, EventValue)>,
}

/// An event's symbol as the stream writes it: empty for the account as a whole.
fn symbol_or_empty<S: serde::Serializer>(symbol: &Option<Symbol>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(symbol.as_ref().map_or("", Symbol::as_str))
}

impl Event {
    /// An event with no fields of its own yet.
    pub fn new(event: &'static str, plan_id: &PlanId, symbol: &Symbol, ts: Timestamp) -> Self {
        Event {
            event,
            plan_id: plan_id.clone(),
            symbol: Some(symbol.clone()),
            ts,
            fields: Vec::new(),
        }
    }

    /// Adds a field.
    pub fn with(mut self, name: &'static str, value: impl Into<EventValue>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    /// The symbol as written on the events stream (empty for the account as a whole).
    pub fn symbol_text(&self) -> &str {
        self.symbol.as_ref().map_or("", Symbol::as_str)
    }

    /// The value of the field `name`, as text.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// An event field's value, kept as it is until the event is written: a decision does not spend
/// its time formatting numbers into strings (the store and the log write them, as text).
#[derive(Clone, Debug, PartialEq)]
pub enum EventValue {
    /// A fixed word (a code, a state).
    Word(&'static str),
    /// Text.
    Text(String),
    /// A symbol.
    Symbol(Symbol),
    /// A plan id.
    PlanId(PlanId),
    /// A number, written as Rust's shortest round-trip form.
    Num(f64),
    /// A count or a fence.
    Count(u64),
    /// A signed integer (a time in ms).
    Int(i64),
}

impl std::fmt::Display for EventValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventValue::Word(w) => f.write_str(w),
            EventValue::Text(t) => f.write_str(t),
            EventValue::Symbol(s) => f.write_str(s.as_str()),
            EventValue::PlanId(p) => f.write_str(p.as_str()),
            EventValue::Num(n) => write!(f, "{n}"),
            EventValue::Count(n) => write!(f, "{n}"),
            EventValue::Int(n) => write!(f, "{n}"),
        }
    }
}

impl EventValue {
    /// The value as text, borrowed when it already is text.
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            EventValue::Word(w) => std::borrow::Cow::Borrowed(w),
            EventValue::Text(t) => std::borrow::Cow::Borrowed(t),
            EventValue::Symbol(s) => std::borrow::Cow::Borrowed(s.as_str()),
            EventValue::PlanId(p) => std::borrow::Cow::Borrowed(p.as_str()),
            EventValue::Num(n) => std::borrow::Cow::Owned(n.to_string()),
            EventValue::Count(n) => std::borrow::Cow::Owned(n.to_string()),
            EventValue::Int(n) => std::borrow::Cow::Owned(n.to_string()),
        }
    }
}

impl Serialize for EventValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_text())
    }
}

impl From<&'static str> for EventValue {
    fn from(w: &'static str) -> Self {
        EventValue::Word(w)
    }
}

impl From<String> for EventValue {
    fn from(t: String) -> Self {
        EventValue::Text(t)
    }
}

impl From<&Symbol> for EventValue {
    fn from(s: &Symbol) -> Self {
        EventValue::Symbol(s.clone())
    }
}

impl From<&PlanId> for EventValue {
    fn from(p: &PlanId) -> Self {
        EventValue::PlanId(p.clone())
    }
}

impl From<f64> for EventValue {
    fn from(n: f64) -> Self {
        EventValue::Num(n)
    }
}

impl From<i64> for EventValue {
    fn from(n: i64) -> Self {
        EventValue::Int(n)
    }
}

impl From<u64> for EventValue {
    fn from(n: u64) -> Self {
        EventValue::Count(n)
    }
}

/// One change to the store.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Write (or overwrite, for a pending plan reaching its end) a decision record that no
    /// `Decision` carries: a rotation timeout. A committed `Decision` records itself.
    Record(std::sync::Arc<DecisionRecord>),
    /// Reserve a slot and capital for a permitted open.
    Reserve {
        /// The plan holding it.
        plan_id: PlanId,
        /// The reservation (its fence is assigned at commit).
        reservation: Reservation,
    },
    /// Write the permit.
    WritePermit(Permit),
    /// Write the block record (`quantum:governor:block:{plan_id}`).
    WriteBlock {
        /// The blocked plan.
        plan_id: PlanId,
        /// Why.
        reason: BlockReason,
        /// A sentence on why.
        detail: String,
    },
    /// Take (or keep) a symbol's exit lock.
    TakeExitLock {
        /// The symbol.
        symbol: Symbol,
        /// The plan holding it.
        holder: PlanId,
        /// When it lapses.
        expires_at: Timestamp,
    },
    /// Release an exit lock, only if `holder` still holds it (compare-and-delete).
    ReleaseExitLock {
        /// The symbol.
        symbol: Symbol,
        /// The plan that must hold it.
        holder: PlanId,
    },
    /// Record an open for the cooldown and the rate windows.
    CountOpen {
        /// The plan whose open it is (keeps each open distinct in the rate window).
        plan_id: PlanId,
        /// The symbol opened.
        symbol: Symbol,
        /// When.
        at: Timestamp,
    },
    /// Phase 1 of a rotation.
    StartRotation(Box<RotationLock>),
    /// The rotation's close was permitted (`RotationPhase::ClosePermitted`); nothing if the
    /// rotation is gone or further on.
    MarkRotationClosePermitted {
        /// The pending plan.
        pending_plan_id: PlanId,
    },
    /// The rotation close executed: hold its slot for the pending plan.
    HoldRotationSlot {
        /// The pending plan.
        pending_plan_id: PlanId,
    },
    /// The rotation is over (completed, blocked or timed out).
    EndRotation {
        /// The pending plan.
        pending_plan_id: PlanId,
    },
    /// Publish a plan on the plan stream (rotation close plans).
    PublishPlan(Vec<(String, String)>),
    /// Switch the trading state.
    SetTradingState {
        /// The new state.
        to: TradingState,
        /// Why (recorded with the event).
        reason: String,
    },
    /// Turn a reservation into a position (a filled open); adds to an existing position.
    FillOpen {
        /// The plan whose order filled.
        plan_id: PlanId,
        /// The instrument.
        symbol: Symbol,
        /// The position it adds (qty and price are the fill's).
        fill: LedgerPosition,
    },
    /// Drop a reservation and its capital.
    ReleaseReservation {
        /// The plan that held it.
        plan_id: PlanId,
    },
    /// Reduce a position by a filled close; removes it when nothing is left.
    ReducePosition {
        /// The instrument.
        symbol: Symbol,
        /// The filled quantity.
        qty: f64,
    },
    /// Forget opens at or before `before`: they left every rate window.
    PruneOpens {
        /// The cut-off.
        before: Timestamp,
    },
    /// Record an order whose outcome is not known yet (written before it is sent).
    MarkInDoubt {
        /// The plan (and client order id) of the order.
        plan_id: PlanId,
        /// What is known of it.
        order: OrderInDoubt,
    },
    /// Remember that this result was applied (results are idempotent); its order, if it was in
    /// doubt, is not any more.
    MarkResultApplied {
        /// The result's plan id.
        plan_id: PlanId,
    },
    /// Publish an event.
    Emit(Event),
    /// Raise the hour's equity peak to `equity` (if higher); forget hours before `keep_from`.
    RecordEquity {
        /// Hour index (ms / 3,600,000).
        hour: i64,
        /// Equity seen.
        equity: f64,
        /// The first hour of the drawdown window.
        keep_from: i64,
    },
    /// Forget the equity history and start again from `equity` (an operator resumed trading
    /// after a drawdown halt: the drawdown is acknowledged).
    ResetEquity {
        /// Hour index.
        hour: i64,
        /// Equity now.
        equity: f64,
    },
    /// Record or clear the governor's own halt.
    SetHalt(Option<crate::book::Halt>),
    /// Record an executed close and its PnL; forget closes before `keep_from`.
    RecordClose {
        /// The close.
        close: crate::book::CloseRecord,
        /// The start of the loss-streak window.
        keep_from: Timestamp,
    },
}

/// A condition the commit re-checks atomically before applying any effect.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// No decision exists yet for this plan id.
    Undecided(PlanId),
    /// The plan's decision is still PENDING and its rotation has a held slot (phase 2).
    RotationSlotHeld(PlanId),
    /// The trading state is still this.
    TradingStateIs(TradingState),
    /// Taking `symbol` in `side` still fits: it is already held in that side, or fewer than
    /// `desired` slots are occupied (counting `unledgered` exchange positions too).
    SlotAvailable {
        /// The symbol to take.
        symbol: Symbol,
        /// Its side.
        side: Side,
        /// Desired slots at decision time.
        desired: u32,
        /// Exchange positions the ledger does not know yet, on symbols the book holds nothing
        /// of (they count; one the book holds a reservation for is in the slot table already).
        unledgered: u32,
    },
    /// The exit lock is free, lapsed, or already held by `holder`.
    ExitLockFree {
        /// The symbol.
        symbol: Symbol,
        /// Who may hold it.
        holder: PlanId,
    },
    /// No open on `symbol` strictly after `since`.
    CooldownClear {
        /// The symbol.
        symbol: Symbol,
        /// The start of the cooldown window.
        since: Timestamp,
    },
    /// Fewer than `limit` opens strictly after `since`.
    OpensBelow {
        /// The start of the window.
        since: Timestamp,
        /// The most opens allowed before this one.
        limit: u32,
    },
    /// No reservation was made, and no rotation started or took its slot, since the snapshot
    /// (so the money caps and the slot promises computed on it still hold).
    NoReservationSince(u64),
    /// The reservation still exists (an expiry that nothing else handled first).
    ReservationExists(PlanId),
    /// The rotation still exists (a timeout that phase 2 did not beat).
    RotationExists(PlanId),
    /// The rotation still exists and its close has not been permitted (a timeout that may
    /// release the close's exit lock: no permitted close holds it).
    RotationAwaitingClose(PlanId),
    /// No open of `symbol` is permitted and unsettled or in doubt (`Book::open_in_flight`):
    /// a close's guard.
    NoOpenInFlight(Symbol),
    /// This result was not applied yet (results are idempotent).
    ResultNotApplied(PlanId),
    /// No order of this plan is in doubt (its reservation may lapse with its permit).
    NotInDoubt(PlanId),
    /// `symbol`'s ledger position is still at `version` and nothing is in flight on it (no
    /// reservation, live exit lock or order in doubt): the reconciler's guard.
    LedgerSettled {
        /// The symbol.
        symbol: Symbol,
        /// Its ledger version when the reconciler read it.
        version: u64,
    },
    /// Taking `symbol` in `side` keeps that side under `limit` slots: it is already held in
    /// that side, or fewer than `limit` slots of that side are occupied (plus `unledgered`).
    SideSlotsBelow {
        /// The symbol to take.
        symbol: Symbol,
        /// Its side.
        side: Side,
        /// The side's maximum.
        limit: u32,
        /// Exchange positions of that side the ledger does not know yet, on symbols the book
        /// holds nothing of (they count).
        unledgered: u32,
    },
}

/// A guard that did not hold at commit.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("guard failed at commit: {0:?}")]
pub struct GuardFailed(pub Guard);

//! The account as the money gates see it: ledger positions merged with the exchange's view,
//! reservations, and slots held by rotations — each with its notional at the current mark.

use super::common::{refuse, Ctx, Refusal};
use crate::market::SymbolMarket;
use crate::reason::BlockReason;
use crate::snapshot::Snapshot;
use crate::symbol_walk::SymbolWalk;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace};
use crate::types::{PlanId, Side, Symbol};

/// What a holding is.
#[derive(Clone, Debug, PartialEq)]
pub enum HoldingKind<'a> {
    /// An open position.
    Position {
        /// When it was opened (unknown for positions only the exchange knows).
        opened_at: Option<Timestamp>,
        /// The opening plan's score.
        entry_score: Option<f64>,
        /// Unrealized PnL as a fraction of the entry value (direction-aware).
        pnl_pct: f64,
        /// Average entry price.
        entry_price: f64,
        /// Whether the ledger knows it (the exchange alone otherwise).
        ledgered: bool,
    },
    /// Reserved for a permitted open.
    Reserved(&'a PlanId),
    /// A slot freed by a rotation close, held for its pending plan.
    Held(&'a PlanId),
}

/// One thing that uses a slot, margin or notional.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding<'a> {
    /// The instrument.
    pub symbol: &'a Symbol,
    /// Direction.
    pub side: Side,
    /// Size in base units.
    pub qty: f64,
    /// qty × mark (reservations: the notional reserved).
    pub notional: f64,
    /// Leverage.
    pub leverage: u32,
    /// What it is.
    pub kind: HoldingKind<'a>,
    /// The symbol's market summary (`None` without klines), found once when the view is built
    /// so that the gates reading it (correlation, the projection's tiers) search no map.
    pub market: Option<&'a SymbolMarket>,
}

impl Holding<'_> {
    /// Whether this holding is an open position.
    pub fn is_position(&self) -> bool {
        matches!(self.kind, HoldingKind::Position { .. })
    }

    /// Unrealized PnL in USDT at the mark (0 for reservations and held slots).
    pub fn unrealized_pnl(&self) -> f64 {
        match self.kind {
            HoldingKind::Position { entry_price, .. } => {
                (self.notional - self.qty * entry_price) * self.side.sign()
            }
            _ => 0.0,
        }
    }
}

/// The account at decision time.
#[derive(Clone, Debug, PartialEq)]
pub struct Portfolio<'a> {
    /// Every position, reservation and held slot.
    pub holdings: Vec<Holding<'a>>,
    /// Account equity in USDT.
    pub equity: f64,
    /// Exchange positions the ledger does not know (they count as occupied).
    pub unledgered: u32,
}

impl<'a> Portfolio<'a> {
    /// Builds the view; `None` when the exchange state is unavailable.
    pub fn build(snap: &'a Snapshot) -> Option<Portfolio<'a>> {
        let exchange = snap.exchange.as_ref()?;
        let book = &snap.book;
        let mut holdings = Vec::with_capacity(
            book.positions.len().max(exchange.positions.len())
                + book.reservations.len()
                + book.rotations.len(),
        );
        let mut unledgered = 0;
        // Both maps are sorted by symbol: walk them side by side (no set, no lookups), and
        // the market map alongside them.
        let mut markets = SymbolWalk::new(&snap.market);
        let mut ledger_iter = book.positions.iter().peekable();
        let mut live_iter = exchange.positions.iter().peekable();
        loop {
            let (symbol, ledger, live) = match (ledger_iter.peek(), live_iter.peek()) {
                (None, None) => break,
                (Some((ls, _)), Some((xs, _))) if ls == xs => {
                    let (s, l) = ledger_iter.next().expect("peeked");
                    let (_, x) = live_iter.next().expect("peeked");
                    (s, Some(l), Some(x))
                }
                (Some((ls, _)), Some((xs, _))) if ls > xs => {
                    let (s, x) = live_iter.next().expect("peeked");
                    (s, None, Some(x))
                }
                (Some(_), _) => {
                    let (s, l) = ledger_iter.next().expect("peeked");
                    (s, Some(l), None)
                }
                (None, Some(_)) => {
                    let (s, x) = live_iter.next().expect("peeked");
                    (s, None, Some(x))
                }
            };
            let market = markets.find(symbol).map(|m| &**m);
            let (side, qty, entry, mark, leverage) = match (live, ledger) {
                (Some(x), _) => (x.side, x.qty, x.entry_price, x.mark_price, x.leverage),
                (None, Some(l)) => (
                    l.side,
                    l.qty,
                    l.entry_price,
                    market.map_or(l.entry_price, |m| m.last_close),
                    l.leverage,
                ),
                (None, None) => continue, // never: one of the two maps held it
            };
            if ledger.is_none() {
                unledgered += 1;
            }
            holdings.push(Holding {
                symbol,
                side,
                qty,
                notional: qty * mark,
                leverage: leverage.max(1),
                kind: HoldingKind::Position {
                    opened_at: ledger.map(|l| l.opened_at),
                    entry_score: ledger.and_then(|l| l.entry_score),
                    pnl_pct: if entry > 0.0 {
                        (mark - entry) / entry * side.sign()
                    } else {
                        0.0
                    },
                    entry_price: entry,
                    ledgered: ledger.is_some(),
                },
                market,
            });
        }
        for (plan_id, r) in &book.reservations {
            holdings.push(Holding {
                symbol: &r.symbol,
                side: r.side,
                qty: r.qty,
                notional: r.notional,
                leverage: r.leverage.max(1),
                kind: HoldingKind::Reserved(plan_id),
                market: snap.market.get(&r.symbol).map(|m| &**m),
            });
        }
        for (plan_id, rot) in &book.rotations {
            if rot.phase != crate::book::RotationPhase::SlotHeld {
                continue;
            }
            if let crate::plan::Action::Open(side) = rot.pending.action {
                holdings.push(Holding {
                    symbol: &rot.pending.symbol,
                    side,
                    qty: 0.0,
                    notional: 0.0,
                    leverage: 1,
                    kind: HoldingKind::Held(plan_id),
                    market: snap.market.get(&rot.pending.symbol).map(|m| &**m),
                });
            }
        }
        Some(Portfolio {
            holdings,
            equity: exchange.equity_usdt,
            unledgered,
        })
    }

    /// Distinct symbols that hold a slot.
    pub fn occupied_slots(&self) -> usize {
        // Positions come first, one per symbol (`build` merges the two maps by symbol, and
        // `without` keeps the order); a reservation or held slot counts when no holding before
        // it has its symbol. A handful of holdings: a scan beats building a set on every call.
        let h = &self.holdings;
        let positions = h.iter().take_while(|x| x.is_position()).count();
        positions
            + (positions..h.len())
                .filter(|&i| !h[..i].iter().any(|e| e.symbol == h[i].symbol))
                .count()
    }

    /// Open positions (not reservations, not held slots).
    pub fn position_count(&self) -> usize {
        self.holdings.iter().filter(|h| h.is_position()).count()
    }

    /// Σ notional of positions and reservations.
    pub fn total_notional(&self) -> f64 {
        self.holdings.iter().map(|h| h.notional).sum()
    }

    /// Σ notional of positions only, over equity: the exposure upstream snapshots.
    pub fn exposure(&self) -> f64 {
        let positions: f64 = self
            .holdings
            .iter()
            .filter(|h| h.is_position())
            .map(|h| h.notional)
            .sum();
        if self.equity > 0.0 {
            positions / self.equity
        } else {
            f64::INFINITY
        }
    }

    /// Σ notional / leverage: the margin in use (positions and reservations).
    pub fn margin_used(&self) -> f64 {
        self.holdings
            .iter()
            .map(|h| h.notional / f64::from(h.leverage))
            .sum()
    }

    /// The side `symbol` is held in, if any.
    pub fn side_of(&self, symbol: &Symbol) -> Option<Side> {
        self.holdings
            .iter()
            .find(|h| h.symbol == symbol)
            .map(|h| h.side)
    }

    /// The same portfolio without `symbol` (a rotation's pre-check) or without a plan's own
    /// held slot (phase 2).
    pub fn without(&self, drop: impl Fn(&Holding<'a>) -> bool) -> Portfolio<'a> {
        Portfolio {
            holdings: self.holdings.iter().filter(|h| !drop(h)).cloned().collect(),
            equity: self.equity,
            unledgered: self.unledgered,
        }
    }
}

/// Opens need the exchange's view (positions, equity): without it they are blocked.
pub fn require_exchange<'a>(ctx: &Ctx<'a>, trace: &mut Trace) -> Result<Portfolio<'a>, Refusal> {
    trace.line("exchange_state", Outcome::Pass);
    match Portfolio::build(ctx.snap) {
        None => {
            trace.last().flag("available", false);
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ExchangeStateUnavailable,
                    "no exchange snapshot: positions and equity unknown",
                ),
            ))
        }
        Some(p) => {
            trace
                .last()
                .flag("available", true)
                .num("equity_usdt", p.equity)
                .int("positions", p.position_count() as i64)
                .int("unledgered_positions", i64::from(p.unledgered));
            Ok(p)
        }
    }
}

//! The account as the money gates see it: ledger positions merged with the exchange's view,
//! reservations, and slots held by rotations — each with its notional at the current mark.

use super::common::{refuse, Refusal};
use crate::book::Book;
use crate::market::SymbolMarket;
use crate::reason::BlockReason;
use crate::snapshot::{ExchangeState, Snapshot};
use crate::symbol_walk::SymbolWalk;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace};
use crate::types::{PlanId, Side, Symbol};

/// The market summaries by symbol, as a snapshot holds them.
type Markets = std::collections::BTreeMap<Symbol, std::sync::Arc<SymbolMarket>>;

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
        Portfolio::of(&snap.book, snap.exchange.as_ref(), &snap.market)
    }

    /// Builds the view from the parts of a snapshot it reads; `None` without the exchange's.
    fn of(
        book: &'a Book,
        exchange: Option<&'a ExchangeState>,
        market: &'a Markets,
    ) -> Option<Self> {
        let exchange = exchange?;
        let mut holdings = Vec::with_capacity(
            book.positions.len().max(exchange.positions.len())
                + book.reservations.len()
                + book.rotations.len(),
        );
        let mut unledgered = 0;
        // Both maps are sorted by symbol: walk them side by side (no set, no lookups), and
        // the market map alongside them.
        let mut markets = SymbolWalk::new(market);
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
                market: market.get(&r.symbol).map(|m| &**m),
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
                    market: market.get(&rot.pending.symbol).map(|m| &**m),
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

    /// Exchange positions the ledger does not know on symbols that nothing in the book holds
    /// either (no reservation, no held slot), on `side` if given: what a slot guard adds to
    /// the store's slot table, which already counts the symbols the book holds. An open whose
    /// fill reached the exchange before its result reached the ledger is one such position
    /// *and* its reservation: counted once, not twice.
    pub fn unledgered_outside_book(&self, side: Option<Side>) -> u32 {
        self.holdings
            .iter()
            .filter(|h| side.is_none_or(|s| h.side == s))
            .filter(|h| {
                matches!(
                    h.kind,
                    HoldingKind::Position {
                        ledgered: false,
                        ..
                    }
                )
            })
            .filter(|h| {
                !self
                    .holdings
                    .iter()
                    .any(|o| o.symbol == h.symbol && !o.is_position())
            })
            .count() as u32
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

/// The portfolio view of one snapshot, built at most once however many plans are decided on
/// it: a batch decides its plans on one view until a decision changes the book (then the view
/// is let go, the decision absorbed, and a new view built). It borrows the book, the exchange
/// state and the market it is built from, so none of them can change while it lives; and it
/// refuses to serve a snapshot whose parts are not those (a view of another snapshot).
pub struct SharedView<'a> {
    book: &'a Book,
    exchange: Option<&'a ExchangeState>,
    market: &'a Markets,
    view: std::cell::OnceCell<Option<Portfolio<'a>>>,
}

impl<'a> SharedView<'a> {
    /// The view of `book`, `exchange` and `market` (a snapshot's own fields), built when first
    /// asked for.
    pub fn new(book: &'a Book, exchange: Option<&'a ExchangeState>, market: &'a Markets) -> Self {
        SharedView {
            book,
            exchange,
            market,
            view: std::cell::OnceCell::new(),
        }
    }

    /// The view of `snap`'s own book, exchange state and market.
    pub fn of(snap: &'a Snapshot) -> Self {
        SharedView::new(&snap.book, snap.exchange.as_ref(), &snap.market)
    }

    /// The portfolio of `snap`, which must be the snapshot this view was made from (its book,
    /// exchange state and market the very ones borrowed); `None` without the exchange's view.
    ///
    /// # Panics
    /// When `snap` is another snapshot: deciding on another snapshot's portfolio would decide
    /// on a wrong book.
    pub fn get(&self, snap: &Snapshot) -> Option<&Portfolio<'a>> {
        assert!(
            std::ptr::eq(self.book, &*snap.book)
                && std::ptr::eq(self.market, &*snap.market)
                && match (self.exchange, snap.exchange.as_ref()) {
                    (Some(a), Some(b)) => std::ptr::eq(a, b),
                    (None, None) => true,
                    _ => false,
                },
            "a portfolio view used with a snapshot it was not built from"
        );
        self.view
            .get_or_init(|| Portfolio::of(self.book, self.exchange, self.market))
            .as_ref()
    }
}

/// Opens need the exchange's view (positions, equity): without it they are blocked.
pub fn require_exchange<'v, 'a>(
    view: Option<&'v Portfolio<'a>>,
    trace: &mut Trace,
) -> Result<&'v Portfolio<'a>, Refusal> {
    trace.line("exchange_state", Outcome::Pass);
    match view {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, position, reserve, sym};

    fn snapshot() -> Snapshot {
        let mut book = Book::default();
        book.positions
            .insert(sym("AUSDT"), position(Side::Long, 1.0, 100.0));
        reserve(&mut book, "p1", "BUSDT", Side::Short, 50.0);
        test_snapshot(book, Some(account(1_000.0)))
    }

    /// The shared view is the view `build` makes, built once for every plan that asks.
    #[test]
    fn a_shared_view_is_the_snapshots_own_portfolio() {
        let snap = snapshot();
        let view = SharedView::of(&snap);
        let first = view.get(&snap).expect("an account");
        assert_eq!(Some(first), Portfolio::build(&snap).as_ref());
        assert_eq!(first.holdings.len(), 2);
        assert!(std::ptr::eq(first, view.get(&snap).expect("an account")));
        let no_exchange = test_snapshot(Book::default(), None);
        assert_eq!(SharedView::of(&no_exchange).get(&no_exchange), None);
    }

    /// An exchange position the ledger does not know yet, on a symbol the book holds a
    /// reservation for (an open filled before its result was booked), is in the store's slot
    /// table already: the slot guard must not count it again. Found by the simulator (schedule
    /// 2, seed 46): counted twice, every open's guard failed and the plans were left undecided.
    #[test]
    fn an_unledgered_position_with_a_reservation_is_counted_once() {
        let mut snap = snapshot();
        let exchange = snap.exchange.as_mut().expect("an account");
        for s in ["BUSDT", "CUSDT"] {
            exchange
                .positions
                .insert(sym(s), exchange_position(Side::Short));
        }
        let view = Portfolio::build(&snap).expect("an account");
        assert_eq!(view.unledgered, 2, "both are unknown to the ledger");
        assert_eq!(
            view.unledgered_outside_book(None),
            1,
            "BUSDT has its reservation in the book; CUSDT nothing"
        );
        assert_eq!(view.unledgered_outside_book(Some(Side::Long)), 0);
        assert_eq!(view.occupied_slots(), 3, "AUSDT, BUSDT, CUSDT");
    }

    fn exchange_position(side: Side) -> crate::snapshot::ExchangePosition {
        crate::snapshot::ExchangePosition {
            side,
            qty: 1.0,
            entry_price: 10.0,
            mark_price: 10.0,
            leverage: 5,
        }
    }

    /// A view asked for another snapshot — even an equal copy, which a later change could make
    /// differ — refuses rather than answer with a book that is not the one being decided on.
    #[test]
    #[should_panic(expected = "a portfolio view used with a snapshot it was not built from")]
    fn a_shared_view_refuses_another_snapshot() {
        let snap = snapshot();
        let copy = snap.clone();
        SharedView::of(&snap).get(&copy);
    }
}

//! A simulated exchange: positions and orders by client id, at the market's marks, answering each
//! order the way the world tells it to — filled, partly filled, refused, filled with the answer
//! lost (a 5xx or a timeout after the fill), lost before it arrived, or arriving late (within
//! the request window, after its sender stopped waiting). It implements the exchange port, so
//! the executor's order functions and the reconciler ask it what they ask Binance.

use crate::exchange::{
    Exchange, ExchangeError, Fill, OrderError, OrderRequest, OrderState, SymbolFilters,
};
use governor_core::market::Kline;
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::BTreeMap;
use std::time::Duration;

/// How the exchange answers the next order.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Answer {
    /// Filled in whole, and said so.
    Fill,
    /// This fraction filled before the order ended (`EXPIRED`), and said so.
    Partial(f64),
    /// Refused (-2019): nothing filled, and said so.
    Refuse,
    /// Filled in whole, but the answer was lost (a 5xx, a timeout after the effect).
    FillAnswerLost,
    /// Lost on the way: never placed, and no answer.
    LostOnTheWay,
    /// No answer yet; the order arrives later, within the request window (or never, past it).
    Late,
}

/// An order sent but not arrived.
struct InTransit {
    order: OrderRequest,
    sent_at: Timestamp,
}

/// The simulated exchange.
pub struct SimExchange {
    pub(super) marks: BTreeMap<Symbol, f64>,
    equity_usdt: f64,
    positions: BTreeMap<Symbol, ExchangePosition>,
    orders: BTreeMap<String, OrderState>,
    in_transit: Vec<InTransit>,
    /// How many orders each client id sent (arrived or not).
    pub sent: BTreeMap<String, u32>,
    /// How the next order is answered.
    pub next_answer: Answer,
    /// The next question about an order fails with a 5xx.
    pub next_query_fails: bool,
    clock: fn() -> Timestamp,
    window: Duration,
}

impl SimExchange {
    /// An exchange with no positions, `equity_usdt` of equity, at `marks`; `window` is its
    /// request window (`recvWindow`).
    pub fn new(
        marks: BTreeMap<Symbol, f64>,
        equity_usdt: f64,
        clock: fn() -> Timestamp,
        window: Duration,
    ) -> Self {
        SimExchange {
            marks,
            equity_usdt,
            positions: BTreeMap::new(),
            orders: BTreeMap::new(),
            in_transit: Vec::new(),
            sent: BTreeMap::new(),
            next_answer: Answer::Fill,
            next_query_fails: false,
            clock,
            window,
        }
    }

    /// The market moved: orders fill at `marks` from now on, and the positions are marked at
    /// them. A symbol without a mark keeps its last one.
    pub fn set_marks(&mut self, marks: impl IntoIterator<Item = (Symbol, f64)>) {
        for (symbol, mark) in marks {
            if let Some(p) = self.positions.get_mut(&symbol) {
                p.mark_price = mark;
            }
            self.marks.insert(symbol, mark);
        }
    }

    /// Whether the order with `client_id` filled, in whole or in part.
    pub fn has_filled(&self, client_id: &str) -> bool {
        matches!(
            self.orders.get(client_id),
            Some(OrderState::Final { fill: Some(_), .. })
        )
    }

    /// The open positions.
    pub fn positions(&self) -> &BTreeMap<Symbol, ExchangePosition> {
        &self.positions
    }

    /// Orders sent but not arrived.
    pub fn in_transit(&self) -> usize {
        self.in_transit.len()
    }

    /// Lets the late orders arrive: those still within the request window of their sending
    /// take effect; those past it are refused by the exchange (they never take effect).
    /// Returns how many took effect and how many were dropped.
    pub fn deliver(&mut self) -> (usize, usize) {
        let now = (self.clock)();
        let (mut arrived, mut dropped) = (0, 0);
        for t in std::mem::take(&mut self.in_transit) {
            if !crate::orders::absence_is_final(t.sent_at, now, self.window) {
                let filled = self.execute(&t.order, 1.0);
                self.record(&t.order, filled);
                arrived += 1;
            } else {
                dropped += 1;
            }
        }
        (arrived, dropped)
    }

    /// Fills `fraction` of `order` against the book: an open adds to (or starts) its position,
    /// a reduce-only order reduces it (never past zero). `None` when nothing could fill.
    fn execute(&mut self, order: &OrderRequest, fraction: f64) -> Option<Fill> {
        let mark = *self.marks.get(&order.symbol)?;
        let want = order.qty * fraction;
        let qty = if order.reduce_only {
            let held = self.positions.get(&order.symbol)?;
            if held.side == order.side {
                return None; // a reduce-only order trades against the position
            }
            want.min(held.qty)
        } else {
            want
        };
        if !(qty > 0.0) {
            return None;
        }
        match self.positions.get_mut(&order.symbol) {
            Some(p) if order.reduce_only => {
                p.qty -= qty;
                if p.qty <= qty.max(p.qty.abs()) * 1e-9 {
                    self.positions.remove(&order.symbol);
                }
            }
            Some(p) if p.side == order.side => {
                p.entry_price = (p.entry_price * p.qty + mark * qty) / (p.qty + qty);
                p.qty += qty;
            }
            Some(_) => return None, // the governor never opens against a held side
            None => {
                self.positions.insert(
                    order.symbol.clone(),
                    ExchangePosition {
                        side: order.side,
                        qty,
                        entry_price: mark,
                        mark_price: mark,
                        leverage: order.leverage.max(1),
                    },
                );
            }
        }
        Some(Fill {
            qty,
            avg_price: mark,
            fee: Some(0.0),
            realized_pnl: Some(0.0),
        })
    }

    /// Keeps the order's final state for questions by client id.
    fn record(&mut self, order: &OrderRequest, fill: Option<Fill>) {
        let status = if fill.as_ref().is_some_and(|f| f.qty < order.qty) {
            "EXPIRED"
        } else if fill.is_some() {
            "FILLED"
        } else {
            "REJECTED"
        };
        self.orders.insert(
            order.client_id.to_string(),
            OrderState::Final {
                status: status.to_owned(),
                fill,
            },
        );
    }
}

impl Exchange for SimExchange {
    fn account(&self) -> Result<ExchangeState, ExchangeError> {
        Ok(ExchangeState {
            equity_usdt: self.equity_usdt,
            positions: self.positions.clone(),
            clock: Default::default(),
        })
    }

    fn klines(&self, _: &Symbol, _: usize) -> Result<Vec<Kline>, ExchangeError> {
        Err(ExchangeError(
            "the simulated exchange serves no klines".into(),
        ))
    }

    fn filters(&self, _: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        Err(ExchangeError(
            "the simulated exchange serves no filters".into(),
        ))
    }

    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError> {
        *self.sent.entry(order.client_id.to_string()).or_default() += 1;
        let refused = || OrderError::MarginInsufficient {
            needed: order.qty,
            available: 0.0,
        };
        match self.next_answer {
            Answer::Fill | Answer::Partial(_) | Answer::FillAnswerLost => {
                let fraction = match self.next_answer {
                    Answer::Partial(f) => f,
                    _ => 1.0,
                };
                let filled = self.execute(order, fraction);
                self.record(order, filled.clone());
                match (self.next_answer, filled) {
                    (Answer::FillAnswerLost, _) => Err(OrderError::Unknown(
                        "HTTP 503 after the order was accepted".into(),
                    )),
                    (_, Some(fill)) => Ok(fill),
                    (_, None) => Err(OrderError::ReduceOnlyRejected(order.symbol.clone())),
                }
            }
            Answer::Refuse => Err(refused()),
            Answer::LostOnTheWay => Err(OrderError::Unknown("no answer: timed out".into())),
            Answer::Late => {
                self.in_transit.push(InTransit {
                    order: order.clone(),
                    sent_at: (self.clock)(),
                });
                Err(OrderError::Unknown("no answer: timed out".into()))
            }
        }
    }

    fn order_status(&self, _: &Symbol, client_id: &str) -> Result<OrderState, ExchangeError> {
        if self.next_query_fails {
            return Err(ExchangeError("HTTP 503 code -1007".into()));
        }
        Ok(self
            .orders
            .get(client_id)
            .cloned()
            .unwrap_or(OrderState::Absent))
    }

    fn request_window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::clock;
    use governor_core::types::{PlanId, Side};

    fn exchange() -> SimExchange {
        clock::set(Timestamp(1_000_000));
        let marks = [(Symbol::parse("AUSDT").unwrap(), 10.0)].into();
        SimExchange::new(marks, 1_000.0, clock::now, Duration::from_secs(5))
    }

    fn order(id: &str, side: Side, qty: f64, reduce_only: bool) -> OrderRequest {
        OrderRequest {
            client_id: PlanId::parse(id).unwrap(),
            symbol: Symbol::parse("AUSDT").unwrap(),
            side,
            qty,
            reduce_only,
            leverage: 5,
        }
    }

    fn held(x: &SimExchange) -> f64 {
        x.positions().values().map(|p| p.qty).sum()
    }

    #[test]
    fn a_lost_answer_still_filled_and_the_order_is_known_by_its_id() {
        let mut x = exchange();
        x.next_answer = Answer::FillAnswerLost;
        let got = x.place_order(&order("o1", Side::Long, 2.0, false));
        assert!(matches!(got, Err(OrderError::Unknown(_))), "{got:?}");
        assert_eq!(held(&x), 2.0);
        assert!(matches!(
            x.order_status(&Symbol::parse("AUSDT").unwrap(), "o1"),
            Ok(OrderState::Final { fill: Some(f), .. }) if f.qty == 2.0
        ));
    }

    #[test]
    fn a_late_order_takes_effect_only_within_the_window() {
        let mut x = exchange();
        x.next_answer = Answer::Late;
        let _ = x.place_order(&order("o1", Side::Long, 1.0, false));
        let _ = x.place_order(&order("o2", Side::Long, 1.0, false));
        let a = Symbol::parse("AUSDT").unwrap();
        assert_eq!(x.order_status(&a, "o1"), Ok(OrderState::Absent));
        clock::advance(5_000);
        assert_eq!(x.deliver(), (2, 0), "at the window's end both still arrive");
        assert_eq!(held(&x), 2.0);
        x.next_answer = Answer::Late;
        let _ = x.place_order(&order("o3", Side::Long, 1.0, false));
        clock::advance(5_001);
        assert_eq!(x.deliver(), (0, 1), "past the window it never takes effect");
        assert_eq!(x.order_status(&a, "o3"), Ok(OrderState::Absent));
        assert_eq!(held(&x), 2.0);
    }

    #[test]
    fn partial_fills_and_closes_move_the_position_by_what_filled() {
        let mut x = exchange();
        x.next_answer = Answer::Partial(0.25);
        let fill = x
            .place_order(&order("o1", Side::Short, 4.0, false))
            .unwrap();
        assert_eq!(fill.qty, 1.0);
        x.next_answer = Answer::Fill;
        let close = x.place_order(&order("c1", Side::Long, 3.0, true)).unwrap();
        assert_eq!(close.qty, 1.0, "a reduce-only order never goes past zero");
        assert!(x.positions().is_empty());
        x.next_answer = Answer::Refuse;
        assert!(x.place_order(&order("o2", Side::Long, 1.0, false)).is_err());
        assert!(x.positions().is_empty());
        assert_eq!(x.sent.values().sum::<u32>(), 3);
    }
}

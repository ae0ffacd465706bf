//! The exchange port: what the governor and its executor need from an exchange — the account,
//! klines, a symbol's filters, placing an order and asking for it. The paper exchanges (the
//! replay's, on recorded bars, and the live one on the wall clock) and the Binance adapter
//! implement it.

pub mod binance;
pub mod paper;
pub mod paper_live;
pub mod paper_market;

pub use binance::SymbolFilters;
use governor_core::market::Kline;

use governor_core::snapshot::ExchangeState;
use governor_core::types::{PlanId, Side, Symbol};

/// An order the executor places under a permit.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRequest {
    /// The plan id, used as the client order id.
    pub client_id: PlanId,
    /// The instrument.
    pub symbol: Symbol,
    /// Long buys and short sells to open; a reduce-only order trades against the position.
    pub side: Side,
    /// Quantity in base units.
    pub qty: f64,
    /// Close-only: never opens or flips a position.
    pub reduce_only: bool,
    /// Leverage for an opening order.
    pub leverage: u32,
}

/// An executed order (in whole, or the part that filled before it ended).
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// Quantity filled.
    pub qty: f64,
    /// Average fill price.
    pub avg_price: f64,
    /// Commission paid in USDT, as the exchange charged it; `None` when it could not be read
    /// (the fill itself is known: it is published without a fee rather than with a guessed one).
    pub fee: Option<f64>,
    /// Realized PnL of the reduced part (0 for opens), before fees, as the exchange computed
    /// it; `None` when it could not be read.
    pub realized_pnl: Option<f64>,
}

/// What the exchange says of an order asked for by its client id.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderState {
    /// The exchange knows no order with this client id (Binance's -2013).
    Absent,
    /// Accepted and still working (`NEW`, `PARTIALLY_FILLED`): not final yet.
    Working,
    /// Final: its status, and what filled (`None` when nothing did).
    Final {
        /// `FILLED`, `CANCELED`, `EXPIRED`, `REJECTED`, …
        status: String,
        /// The part that filled.
        fill: Option<Fill>,
    },
}

/// Why the exchange refused an order, with Binance's codes where there is one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OrderError {
    /// -2019: the account cannot margin the order.
    #[error("-2019 Margin is insufficient: needs {needed:.2} USDT, {available:.2} available")]
    MarginInsufficient {
        /// Initial margin plus fee the order needs.
        needed: f64,
        /// What the account has free.
        available: f64,
    },
    /// -2022: a reduce-only order that would not reduce a position.
    #[error("-2022 ReduceOnly Order is rejected: no {0} position to reduce")]
    ReduceOnlyRejected(Symbol),
    /// No price to fill at (no market data for the symbol at this time).
    #[error("no market price for {0}")]
    NoPrice(Symbol),
    /// The exchange refused the order with this code and message.
    #[error("{code} {msg}")]
    Rejected {
        /// The exchange's error code (Binance's, e.g. -4164), 0 when it gave none.
        code: i64,
        /// Its message.
        msg: String,
    },
    /// Refused before anything was sent (filters, no position to close, no credentials).
    #[error("refused before sending: {0}")]
    Refused(String),
    /// Sent (or perhaps sent), but its outcome is not known: no answer, a 5xx, Binance's
    /// -1006/-1007, an answer that could not be read, or an order still working. Neither a fill
    /// nor a failure: the executor asks the exchange for the order by its client id.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// A failure to read from the exchange.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("exchange: {0}")]
pub struct ExchangeError(pub String);

/// What the executor and the snapshot need from an exchange.
pub trait Exchange {
    /// The account: equity and open positions with their marks.
    fn account(&self) -> Result<ExchangeState, ExchangeError>;
    /// The last `limit` 1 h klines of `symbol`, oldest first.
    fn klines(&self, symbol: &Symbol, limit: usize) -> Result<Vec<Kline>, ExchangeError>;
    /// The symbol's quantity and price filters.
    fn filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError>;
    /// Places a market order; fills or refuses it, or says its outcome is unknown. `order.qty`
    /// is already rounded to the step.
    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError>;
    /// An order placed earlier, by its client id (the plan id). An error means the exchange
    /// could not be asked: the order's state is still unknown.
    fn order_status(&self, symbol: &Symbol, client_id: &str) -> Result<OrderState, ExchangeError>;
    /// How long after it was sent a request can still take effect (Binance's `recvWindow`):
    /// an order the exchange does not know is taken as never placed only after this. Zero for
    /// an exchange that answers every order at once (the paper ones).
    fn request_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// A boxed exchange is an exchange: `serve` picks one at start (paper or Binance) and hands the
/// same kind to its executor and its reconciler.
impl<T: Exchange + ?Sized> Exchange for Box<T> {
    fn account(&self) -> Result<ExchangeState, ExchangeError> {
        (**self).account()
    }
    fn klines(&self, symbol: &Symbol, limit: usize) -> Result<Vec<Kline>, ExchangeError> {
        (**self).klines(symbol, limit)
    }
    fn filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        (**self).filters(symbol)
    }
    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError> {
        (**self).place_order(order)
    }
    fn order_status(&self, symbol: &Symbol, client_id: &str) -> Result<OrderState, ExchangeError> {
        (**self).order_status(symbol, client_id)
    }
    fn request_window(&self) -> std::time::Duration {
        (**self).request_window()
    }
}

/// The state of an order on a paper exchange, from the fills it recorded: filled, or never
/// placed (a paper order fills or is refused at once, so nothing is ever working or unknown).
pub fn paper_order_state(
    fills: &std::collections::BTreeMap<String, Fill>,
    client_id: &str,
) -> OrderState {
    match fills.get(client_id) {
        Some(fill) => OrderState::Final {
            status: "FILLED".to_owned(),
            fill: Some(fill.clone()),
        },
        None => OrderState::Absent,
    }
}

/// Filters that let any positive quantity through (8 decimals): the paper exchanges'.
pub fn permissive_filters() -> SymbolFilters {
    let tiny = binance::filters::Decimal::parse("0.00000001").expect("a valid step");
    SymbolFilters {
        tick_size: tiny.clone(),
        step_size: tiny,
        min_qty: 0.0,
        max_qty: f64::MAX,
        min_notional: 0.0,
    }
}

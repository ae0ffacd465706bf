//! The exchange port: what the governor's executor needs from an exchange. The paper exchange
//! on recorded klines implements it here; the Binance adapter will implement the same trait.

pub mod paper;

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

/// An executed order.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// Quantity filled.
    pub qty: f64,
    /// Average fill price.
    pub avg_price: f64,
    /// Fee paid in USDT.
    pub fee: f64,
    /// Realized PnL of the reduced part (0 for opens), before fees.
    pub realized_pnl: f64,
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
}

/// What the executor and the snapshot need from an exchange.
pub trait Exchange {
    /// The account: equity and open positions with their marks.
    fn account(&self) -> ExchangeState;
    /// Places an order; fills or refuses it.
    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError>;
}

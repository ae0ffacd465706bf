//! The paper exchange outside the replay (`execute --exchange paper`): market orders fill at
//! once at the recorded market's current mark (on the wall clock, as `serve` sees it) with the
//! paper slippage and fee; the account is the ledger mirror `serve` uses. Nothing is sent
//! anywhere.

use super::paper::PaperCosts;
use super::{
    permissive_filters, Exchange, ExchangeError, Fill, OrderError, OrderRequest, OrderState,
    SymbolFilters,
};
use crate::exchange::paper_market::PaperMarket;
use crate::inputs::InputsSource;
use governor_core::market::Kline;
use governor_core::snapshot::ExchangeState;
use governor_core::time::Timestamp;
use governor_core::types::{Side, Symbol};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Paper fills on the wall-clock market.
pub struct LivePaper {
    market: Arc<PaperMarket>,
    costs: PaperCosts,
    clock: fn() -> Timestamp,
    fills: BTreeMap<String, Fill>,
}

impl LivePaper {
    /// Fills against `market`'s marks at `clock`'s time.
    pub fn new(market: Arc<PaperMarket>, clock: fn() -> Timestamp) -> Self {
        LivePaper {
            market,
            costs: PaperCosts::default(),
            clock,
            fills: BTreeMap::new(),
        }
    }
}

impl Exchange for LivePaper {
    fn account(&self) -> Result<ExchangeState, ExchangeError> {
        self.market
            .inputs((self.clock)())
            .exchange
            .ok_or_else(|| ExchangeError("the ledger could not be read".to_owned()))
    }

    fn klines(&self, symbol: &Symbol, limit: usize) -> Result<Vec<Kline>, ExchangeError> {
        Ok(self.market.klines_at(symbol, (self.clock)(), limit))
    }

    fn filters(&self, _symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        Ok(permissive_filters())
    }

    fn place_order(&mut self, order: &OrderRequest) -> Result<Fill, OrderError> {
        let now = (self.clock)();
        let mark = self
            .market
            .mark(&order.symbol, now)
            .ok_or_else(|| OrderError::NoPrice(order.symbol.clone()))?;
        let buying = (order.side == Side::Long) != order.reduce_only;
        let price = mark
            * if buying {
                1.0 + self.costs.slippage
            } else {
                1.0 - self.costs.slippage
            };
        let mut realized = 0.0;
        if order.reduce_only {
            let account = self
                .account()
                .map_err(|e| OrderError::Refused(e.to_string()))?;
            let Some(p) = account.positions.get(&order.symbol) else {
                return Err(OrderError::ReduceOnlyRejected(order.symbol.clone()));
            };
            realized = (price - p.entry_price) * order.qty.min(p.qty) * p.side.sign();
        }
        let fill = Fill {
            qty: order.qty,
            avg_price: price,
            fee: Some(order.qty * price * self.costs.taker_fee),
            realized_pnl: Some(realized),
        };
        self.fills.insert(order.client_id.to_string(), fill.clone());
        Ok(fill)
    }

    fn order_status(&self, _symbol: &Symbol, client_id: &str) -> Result<OrderState, ExchangeError> {
        Ok(super::paper_order_state(&self.fills, client_id))
    }
}

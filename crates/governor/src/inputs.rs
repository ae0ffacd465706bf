//! What the world outside the store says at decision time — the exchange's account view and
//! the market — and the port that supplies it (the paper market, Binance's market data, a
//! test's fixed world). Every decision, the heat gate and the HTTP views read it through here.

use governor_core::market::correlation::CorrelationCache;
use governor_core::market::SymbolMarket;
use governor_core::snapshot::{DecisionRecord, ExchangeState, Snapshot, StoredState};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the world outside the store says at decision time: the exchange's account view and
/// the per-symbol market summaries (computed once per bar by the caller).
#[derive(Clone, Debug, Default)]
pub struct MarketInputs {
    /// The exchange's view; `None` when it could not be read (opens then fail closed).
    pub exchange: Option<ExchangeState>,
    /// Market summaries by symbol, shared by every snapshot taken from these inputs.
    pub market: Arc<BTreeMap<Symbol, Arc<SymbolMarket>>>,
    /// Pairwise correlations of those symbols, computed once per bar (`None`: per decision).
    pub correlations: Option<Arc<CorrelationCache>>,
}

impl MarketInputs {
    /// What `decide` reads: the store's `state` and the plan's earlier decision, with this
    /// view of the world.
    pub fn snapshot(&self, state: StoredState, prior: Option<DecisionRecord>) -> Snapshot {
        Snapshot::assemble(
            state,
            prior,
            self.exchange.clone(),
            self.market.clone(),
            self.correlations.clone(),
        )
    }
}

/// Where market data and the exchange's view come from.
pub trait InputsSource: Send + Sync {
    /// What the world looks like at `now`.
    fn inputs(&self, now: Timestamp) -> MarketInputs;
}

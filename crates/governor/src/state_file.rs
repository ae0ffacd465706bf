//! The STATE.json format of `quantum-governor evaluate`: the account and market a single
//! decision is evaluated against. Documented in the README; unknown fields are refused.

use crate::inputs::MarketInputs;
use crate::market_data::{load_recorded, market_at};
use crate::store::memory::StoreState;
use anyhow::{bail, Context};
use governor_core::book::Book;
use governor_core::snapshot::{CapitalState, ExchangeState};
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use governor_core::types::TradingState;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `policy_universe` as a list, or as the raw hash field text (to try unparsable values).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PolicyField {
    /// `["BTCUSDT", "ETHUSDT"]`.
    List(Vec<String>),
    /// The raw `universe_symbols` text, exactly as Redis would hold it.
    Raw(String),
}

/// The state file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    /// Decision time in ms since the epoch; default: when the newest loaded bar closed.
    pub now_ms: Option<i64>,
    /// `ACTIVE`, `REDUCING`, `HALTED` or the legacy `1` (the `quantum:kill` key).
    #[serde(default)]
    pub trading_state: Option<String>,
    /// The policy universe; absent means the policy hash is missing.
    #[serde(default)]
    pub policy_universe: Option<PolicyField>,
    /// The exchange's account view; absent means it could not be read.
    #[serde(default)]
    pub exchange: Option<ExchangeState>,
    /// Ledger positions, reservations, rotations, exit locks, recent opens.
    #[serde(default)]
    pub book: Book,
    /// Capital allocation inputs.
    #[serde(default)]
    pub capital: CapitalState,
    /// A directory of `<SYMBOL>-1h.csv` klines, relative to the state file.
    #[serde(default)]
    pub klines_dir: Option<PathBuf>,
    /// `quantum:marketstate:{symbol}` hashes as Redis holds them (strings), for the heat gate:
    /// `{"BTCUSDT": {"sigma": "0.031"}}`.
    #[serde(default)]
    pub marketstate: BTreeMap<Symbol, BTreeMap<String, String>>,
}

/// A state file turned into a store state, market inputs and a decision time.
pub struct LoadedState {
    /// The store's content.
    pub store: StoreState,
    /// Exchange and market.
    pub inputs: MarketInputs,
    /// Decision time.
    pub now: Timestamp,
    /// The raw market-state `sigma` of each symbol that has one.
    pub marketstate_sigma: BTreeMap<Symbol, String>,
}

/// Reads and checks a state file (`None`: an empty account with no policy and no market).
pub fn load(path: Option<&Path>, window: usize) -> anyhow::Result<LoadedState> {
    let file: StateFile = match path {
        None => serde_json::from_str("{}").expect("an empty state parses"),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("parsing state file {}", p.display()))?
        }
    };
    let trading_state = match &file.trading_state {
        None => TradingState::Active,
        Some(raw) => {
            TradingState::parse_kill_key(raw).map_err(|e| anyhow::anyhow!("trading_state: {e}"))?
        }
    };
    let policy_universe = file.policy_universe.as_ref().map(|p| match p {
        PolicyField::List(list) => serde_json::to_string(list).expect("a list serializes"),
        PolicyField::Raw(raw) => raw.clone(),
    });
    let (klines, brackets) = match &file.klines_dir {
        None => Default::default(),
        Some(dir) => {
            let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
            load_recorded(&base.join(dir))?
        }
    };
    let newest = klines
        .values()
        .filter_map(|k| k.last().map(|b| b.close_time()))
        .max();
    let now = match (file.now_ms, newest) {
        (Some(ms), _) => Timestamp(ms),
        (None, Some(t)) => t,
        (None, None) => bail!("state file: give now_ms (no klines to take the time from)"),
    };
    let (market, correlations) = market_at(&klines, &brackets, now, window);
    let inputs = MarketInputs {
        exchange: file.exchange,
        market: market.into(),
        correlations: Some(correlations),
    };
    let store = StoreState {
        trading_state,
        policy_universe,
        capital: file.capital,
        book: file.book.into(),
        ..StoreState::default()
    };
    let marketstate_sigma = file
        .marketstate
        .into_iter()
        .filter_map(|(s, mut h)| Some((s, h.remove("sigma")?)))
        .collect();
    Ok(LoadedState {
        store,
        inputs,
        now,
        marketstate_sigma,
    })
}

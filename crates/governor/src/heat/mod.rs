//! The portfolio heat gate (P2.6) as a service: reads `harvest.proposal` (group
//! `p26_heat_gate`), calibrates each proposal at the portfolio's heat, publishes it to
//! `harvest.calibrated` with one `SHADOW-COMPARE` log line, and in `enforce` mode also writes
//! the calibrated action into `quantum:harvest:proposal:{symbol}`. Proposals that fail the
//! strict parser go to the dead-letter stream with their error and are never calibrated.
//!
//! The same calibration runs on Redis (`redis.rs`), embedded on a file of proposals
//! (`embedded.rs`), and inside the replay.

pub mod embedded;
pub mod redis;

use crate::logfmt;
use governor_core::config::HeatMode;
use governor_core::heat::{resolve_sigma, Calibration, HarvestProposal, HeatInput, PositionRisk};
use governor_core::market::SymbolMarket;
use governor_core::snapshot::ExchangeState;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The proposal stream's consumer group.
pub const HEAT_GROUP: &str = "p26_heat_gate";

/// What the heat formula needs, from the account view, the market data (for ATR-derived
/// sigma; ignored when older than `max_age_secs`) and the market state's raw `sigma` values.
pub fn heat_input(
    exchange: Option<&ExchangeState>,
    market: &BTreeMap<Symbol, Arc<SymbolMarket>>,
    marketstate_sigma: &BTreeMap<Symbol, String>,
    now: Timestamp,
    max_age_secs: u64,
) -> HeatInput {
    let Some(x) = exchange else {
        return HeatInput::default();
    };
    let positions = x
        .positions
        .iter()
        .map(|(symbol, p)| {
            let atr = market
                .get(symbol)
                .filter(|m| now.millis() - m.last_bar_close.millis() <= max_age_secs as i64 * 1000)
                .and_then(|m| m.features.map(|f| f.atr_pct));
            PositionRisk {
                symbol: symbol.clone(),
                notional: (p.qty * p.mark_price).abs(),
                sigma: resolve_sigma(marketstate_sigma.get(symbol).map(String::as_str), atr),
            }
        })
        .collect();
    HeatInput {
        equity: Some(x.equity_usdt),
        positions,
    }
}

/// What enforcing did with the proposal hash.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Shadow mode: nothing written.
    Shadow,
    /// The heat was unknown: nothing written, the proposal stands as harvest wrote it.
    Uncalibrated,
    /// `action` and `calibrated=1` written.
    Written,
    /// The hash holds another proposal by now (its `harvest_action` differs): nothing written.
    StaleProposal,
    /// There is no proposal hash for the symbol: nothing written.
    MissingProposal,
}

impl Enforcement {
    /// The name in the calibrated entry, the logs and the counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Shadow => "shadow",
            Enforcement::Uncalibrated => "uncalibrated",
            Enforcement::Written => "written",
            Enforcement::StaleProposal => "stale_proposal",
            Enforcement::MissingProposal => "missing_proposal",
        }
    }
}

/// The proposal's name in logs: its `plan_id`, else the stream id it came with.
pub fn proposal_name(p: &HarvestProposal, stream_id: &str) -> String {
    p.plan_id
        .as_ref()
        .map_or_else(|| stream_id.to_owned(), |id| id.to_string())
}

/// The entry published to `harvest.calibrated`: the proposal's own fields, then what the gate
/// made of them. `action` (= the calibrated action) and `calibrated=1` only when the heat was
/// known; an uncalibrated entry carries `calibrated=0` and no `action`.
pub fn calibrated_fields(
    p: &HarvestProposal,
    c: &Calibration,
    mode: HeatMode,
    stream_id: &str,
) -> Vec<(String, String)> {
    const OURS: &[&str] = &[
        "action",
        "calibrated",
        "calibrated_action",
        "heat",
        "heat_bucket",
        "downgraded",
        "reason",
        "mode",
        "source_id",
        "heat_trace",
    ];
    let mut out: Vec<(String, String)> = p
        .fields
        .iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut push = |k: &str, v: String| out.push((k.to_owned(), v));
    if c.is_calibrated() {
        push("action", c.calibrated.as_str().to_owned());
    }
    push(
        "calibrated",
        if c.is_calibrated() { "1" } else { "0" }.to_owned(),
    );
    push("calibrated_action", c.calibrated.as_str().to_owned());
    let (heat, bucket) = match &c.heat {
        Ok(r) => (r.heat.to_string(), r.bucket.as_str()),
        Err(_) => (String::new(), "UNAVAILABLE"),
    };
    push("heat", heat);
    push("heat_bucket", bucket.to_owned());
    push("downgraded", c.downgraded().to_string());
    push("reason", c.reason().to_owned());
    push(
        "mode",
        match mode {
            HeatMode::Shadow => "shadow",
            HeatMode::Enforce => "enforce",
        }
        .to_owned(),
    );
    push("source_id", stream_id.to_owned());
    push("heat_trace", c.trace.to_json());
    out
}

/// The `SHADOW-COMPARE` line of docs/wire-contract.md for one proposal, with its newline (in both modes;
/// `enforced=` says what happened to the hash).
pub fn compare_line(name: &str, c: &Calibration, enforced: Enforcement) -> String {
    let (heat, bucket) = match &c.heat {
        Ok(r) => (format!("{:.4}", r.heat), r.bucket.as_str()),
        Err(_) => ("-".to_owned(), "UNAVAILABLE"),
    };
    logfmt::format(
        "SHADOW-COMPARE",
        &[
            ("plan", name.to_owned()),
            ("proposal", c.proposal.as_str().to_owned()),
            ("calibrated", c.calibrated.as_str().to_owned()),
            ("heat", heat),
            ("bucket", bucket.to_owned()),
            ("downgraded", c.downgraded().to_string()),
            ("reason", c.reason().to_owned()),
            ("enforced", enforced.as_str().to_owned()),
        ],
    )
}

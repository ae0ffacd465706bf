//! The governor's state at a glance (`/v1/stats`, the dashboard, the gauges of `/metrics`):
//! slots desired/occupied/available, the regime with its confidence and features, margin usage,
//! portfolio heat, trading state, reservations and locks, and the correlation of open positions.

use crate::heat::heat_input;
use crate::metrics::Gauge;
use crate::store::{StateStore, StoreError};
use crate::MarketInputs;
use governor_core::book::Halt;
use governor_core::config::RegimeReference;
use governor_core::gates::portfolio::Portfolio;
use governor_core::heat::portfolio_heat;
use governor_core::market::correlation::aligned_correlation;
use governor_core::market::regime::{classify, desired_slots, RegimeFeatures};
use governor_core::time::Timestamp;
use governor_core::trace::Trace;
use governor_core::types::{Symbol, TradingState};
use governor_core::Config;
use serde::Serialize;
use std::collections::BTreeMap;

/// The regime the slot budget follows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegimeView {
    /// The reference symbol.
    pub reference: String,
    /// TREND_STRONG, RANGE, CHOP, … or UNKNOWN.
    pub regime: String,
    /// 0 (unknown) to 1.
    pub confidence: f64,
    /// The indicators it was read from.
    pub features: Option<RegimeFeatures>,
}

/// Portfolio heat (P2.6), or why it is unknown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatView {
    /// 0 ≤ heat < 1.
    pub heat: Option<f64>,
    /// COLD, WARM, HOT or UNAVAILABLE.
    pub bucket: String,
    /// Why the heat is unknown, when it is.
    pub unavailable: Option<String>,
}

/// The account against liquidation: Binance's margin ratio with the governor's two lines, and
/// each position's distance to its liquidation price — or why they are unknown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiquidationView {
    /// Maintenance margin / margin balance (liquidation at 1).
    pub margin_ratio: Option<f64>,
    /// Opens are refused above this ratio.
    pub max_ratio: f64,
    /// The governor de-risks above this ratio.
    pub derisk_at: f64,
    /// `cross` or `isolated`.
    pub margin_mode: &'static str,
    /// Each open position against its liquidation price.
    pub positions: Vec<governor_core::derisk::PositionRisk>,
    /// Why the ratio is unknown, when it is.
    pub unavailable: Option<String>,
}

/// Everything `/v1/stats` answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// When it was read (ms).
    pub now: Timestamp,
    /// Decisions this process made, by verdict.
    pub decisions: BTreeMap<String, u64>,
    /// Blocks this process decided, by reason.
    pub blocks: BTreeMap<String, u64>,
    /// Desired slots (`None` when the regime is unknown for lack of data and slots are on).
    pub desired_slots: Option<u32>,
    /// Occupied slots (positions, reservations, held rotation slots, unledgered positions).
    pub occupied_slots: u32,
    /// desired − occupied, never below 0.
    pub available_slots: Option<u32>,
    /// The regime.
    pub regime: Option<RegimeView>,
    /// Margin in use / equity (`None` without the exchange's account view).
    pub margin_usage: Option<f64>,
    /// The margin cap.
    pub max_margin_usage: f64,
    /// Account equity (USDT).
    pub equity: Option<f64>,
    /// Portfolio heat.
    pub heat: HeatView,
    /// The account against liquidation.
    pub liquidation: LiquidationView,
    /// ACTIVE, REDUCING or HALTED.
    pub trading_state: String,
    /// The governor's own halt (drawdown), if it holds.
    pub halt: Option<Halt>,
    /// Live reservations.
    pub reservations: usize,
    /// Rotation locks.
    pub rotation_locks: usize,
    /// Exit locks.
    pub exit_locks: usize,
    /// Open positions (the ledger, and exchange positions it does not know).
    pub positions: Vec<String>,
    /// Correlation of the open positions' last aligned 1 h returns (`null`: too few).
    pub correlation: Vec<Vec<Option<f64>>>,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// Store records that could not be read (quarantined: they hold the opens that need them).
    pub corrupt_records: Vec<governor_core::book::CorruptRecord>,
}

/// Reads the store and the market at `now`.
pub fn read(
    store: &dyn StateStore,
    cfg: &Config,
    inputs: &MarketInputs,
    now: Timestamp,
) -> Result<Stats, StoreError> {
    let snap = inputs.snapshot(store.state(&[], now)?.0, None);
    let (decisions, blocks) = crate::metrics::global().totals();
    let reference = match &cfg.regime.reference {
        RegimeReference::Symbol(s) => Some(s.clone()),
        RegimeReference::Candidate => None,
    };
    let regime = reference.as_ref().map(|r| {
        let features = snap.market.get(r).and_then(|m| m.features);
        let reading = classify(features.as_ref(), &cfg.regime);
        RegimeView {
            reference: r.to_string(),
            regime: reading.regime.as_str().to_owned(),
            confidence: reading.confidence,
            features,
        }
    });
    let desired = match (&regime, cfg.slots.enabled) {
        (Some(_), true) => reference
            .as_ref()
            .and_then(|r| snap.market.get(r))
            .map(|m| {
                let reading = classify(m.features.as_ref(), &cfg.regime);
                desired_slots(reading.regime, &cfg.slots, cfg.funds.max_open_positions)
            }),
        _ => Some(cfg.funds.max_open_positions),
    };
    let portfolio = Portfolio::build(&snap);
    let occupied = portfolio
        .as_ref()
        .map_or(snap.book.slots().len() as u32, |p| {
            p.occupied_slots() as u32
        });
    let margin_usage = portfolio
        .as_ref()
        .filter(|p| p.equity > 0.0)
        // `+ 0.0` turns the -0.0 of an empty sum into 0.
        .map(|p| p.margin_used() / p.equity + 0.0);
    let input = heat_input(
        inputs.exchange.as_ref(),
        &inputs.market,
        &BTreeMap::new(),
        now,
        cfg.regime.max_kline_age_secs,
    );
    let heat = match portfolio_heat(&input, &cfg.heat, &mut Trace::default()) {
        Ok(r) => HeatView {
            heat: Some(r.heat),
            bucket: r.bucket.as_str().to_owned(),
            unavailable: None,
        },
        Err(why) => HeatView {
            heat: None,
            bucket: "UNAVAILABLE".to_owned(),
            unavailable: Some(why),
        },
    };
    let mut held: Vec<Symbol> = snap.book.positions.keys().cloned().collect();
    if let Some(x) = &snap.exchange {
        held.extend(x.positions.keys().cloned());
    }
    held.sort();
    held.dedup();
    let window = cfg.correlation.window as usize;
    let correlation = held
        .iter()
        .map(|a| {
            held.iter()
                .map(|b| {
                    let (ma, mb) = (snap.market.get(a)?, snap.market.get(b)?);
                    aligned_correlation(&ma.returns, &mb.returns, window).rho
                })
                .collect()
        })
        .collect();
    Ok(Stats {
        now,
        decisions,
        blocks,
        desired_slots: desired,
        occupied_slots: occupied,
        available_slots: desired.map(|d| d.saturating_sub(occupied)),
        regime,
        margin_usage,
        max_margin_usage: cfg.funds.max_margin_usage,
        equity: snap.exchange.as_ref().map(|x| x.equity_usdt),
        heat,
        liquidation: liquidation_view(&snap, cfg),
        trading_state: snap.trading_state.as_str().to_owned(),
        halt: snap.book.halt.clone(),
        reservations: snap.book.reservations.len(),
        rotation_locks: snap.book.rotations.len(),
        exit_locks: snap
            .book
            .exit_locks
            .values()
            .filter(|l| l.expires_at > now)
            .count(),
        positions: held.iter().map(|s| s.to_string()).collect(),
        correlation,
        dead_letters: store.dead_letter_count()?,
        corrupt_records: snap.book.corrupt.clone(),
    })
}

/// The account's margin ratio and each position's liquidation distance, or why not.
fn liquidation_view(snap: &governor_core::Snapshot, cfg: &Config) -> LiquidationView {
    let lq = &cfg.liquidation;
    let unknown = |symbol: Symbol| format!("no leverage brackets for {symbol}");
    let (margin_ratio, positions, unavailable) = match (
        governor_core::derisk::account_margin(snap),
        governor_core::derisk::position_risks(snap, cfg),
    ) {
        (Ok(Some(m)), Ok(p)) => (Some(m.ratio), p, None),
        (Ok(None), _) => (
            None,
            Vec::new(),
            Some("no exchange account view".to_owned()),
        ),
        (Err(s), _) | (_, Err(s)) => (None, Vec::new(), Some(unknown(s))),
    };
    LiquidationView {
        margin_ratio,
        max_ratio: lq.max_account_margin_ratio,
        derisk_at: lq.derisk_at,
        margin_mode: lq.margin_mode.as_str(),
        positions,
        unavailable,
    }
}

/// The gauges of `/metrics` from a stats reading.
pub fn gauges(s: &Stats) -> Vec<Gauge> {
    let mut g = vec![
        Gauge::plain(
            "governor_slots_occupied",
            "Occupied slots.",
            f64::from(s.occupied_slots),
        ),
        Gauge::plain(
            "governor_reservations",
            "Live reservations.",
            s.reservations as f64,
        ),
        Gauge::plain(
            "governor_rotation_locks",
            "Rotation locks held.",
            s.rotation_locks as f64,
        ),
        Gauge::plain(
            "governor_exit_locks",
            "Exit locks held.",
            s.exit_locks as f64,
        ),
        Gauge::plain(
            "governor_dead_letters",
            "Entries in the dead-letter stream.",
            s.dead_letters as f64,
        ),
        Gauge::plain(
            "governor_corrupt_records",
            "Store records that could not be read, quarantined.",
            s.corrupt_records.len() as f64,
        ),
    ];
    if let Some(d) = s.desired_slots {
        g.push(Gauge::plain(
            "governor_slots_desired",
            "Desired slots.",
            f64::from(d),
        ));
    }
    if let Some(a) = s.available_slots {
        g.push(Gauge::plain(
            "governor_slots_available",
            "Available slots.",
            f64::from(a),
        ));
    }
    if let Some(r) = &s.regime {
        g.push(Gauge {
            name: "governor_regime",
            help: "1 for the current regime of the reference symbol.",
            labels: vec![
                ("regime", r.regime.clone()),
                ("reference", r.reference.clone()),
            ],
            value: 1.0,
        });
        g.push(Gauge::plain(
            "governor_regime_confidence",
            "Confidence of the regime reading.",
            r.confidence,
        ));
    }
    if let Some(m) = s.margin_usage {
        g.push(Gauge::plain(
            "governor_margin_usage",
            "Margin in use / equity.",
            m,
        ));
    }
    if let Some(r) = s.liquidation.margin_ratio {
        g.push(Gauge::plain(
            "governor_account_margin_ratio",
            "Binance's account margin ratio: maintenance margin / margin balance.",
            r,
        ));
    }
    for p in &s.liquidation.positions {
        if let Some(d) = p.distance {
            g.push(Gauge {
                name: "governor_liquidation_distance",
                help: "How far each position's mark is from its liquidation price (fraction).",
                labels: vec![("symbol", p.symbol.to_string())],
                value: d,
            });
        }
    }
    if let Some(h) = s.heat.heat {
        g.push(Gauge::plain(
            "governor_portfolio_heat",
            "Portfolio heat (P2.6).",
            h,
        ));
    }
    for state in [
        TradingState::Active,
        TradingState::Reducing,
        TradingState::Halted,
    ] {
        g.push(Gauge {
            name: "governor_trading_state",
            help: "1 for the current trading state.",
            labels: vec![("state", state.as_str().to_owned())],
            value: f64::from(u8::from(s.trading_state == state.as_str())),
        });
    }
    g
}

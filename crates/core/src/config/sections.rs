//! The settings: every section of the config with its meaning, its defaults and the ranges
//! it accepts. A gate's settings live here as a section (or fields of one) beside its mode in
//! `[gates]`; the environment names are in `env.rs`, the reading of the file in `load.rs`.

use super::validate::{ConfigError, Validator};
use crate::harvest_action::HarvestAction;
use crate::plan::CloseKind;
use crate::types::Symbol;
use serde::{Deserialize, Serialize};

/// Where the deployment runs: production makes capital allocation mandatory.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Binance testnet: capital allocation optional.
    #[default]
    Testnet,
    /// Real money: capital allocation mandatory.
    Production,
}

/// Which symbol's klines decide the regime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegimeReference {
    /// One reference symbol for every plan (default BTCUSDT).
    Symbol(Symbol),
    /// The plan's own symbol, as the old system did.
    Candidate,
}

impl Serialize for RegimeReference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RegimeReference::Symbol(sym) => s.serialize_str(sym.as_str()),
            RegimeReference::Candidate => s.serialize_str("candidate"),
        }
    }
}

impl<'de> Deserialize<'de> for RegimeReference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        if raw == "candidate" {
            return Ok(RegimeReference::Candidate);
        }
        Symbol::parse(&raw)
            .map(RegimeReference::Symbol)
            .map_err(|e| serde::de::Error::custom(format!("`candidate` or a symbol: {e}")))
    }
}

/// The heat gate's mode (P26_MODE).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeatMode {
    /// Publish calibrated proposals and compare; change nothing.
    #[default]
    Shadow,
    /// Also write the calibrated action into the proposal hash.
    Enforce,
}

/// Regime-driven slot accounting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlotsConfig {
    /// Off: no regime slot limit (max_open_positions is then the only count limit).
    pub enabled: bool,
    /// Slots in RANGE, TREND_MODERATE and UNKNOWN.
    pub base: u32,
    /// Slots in TREND_STRONG.
    pub trend_strong: u32,
    /// Slots in CHOP.
    pub chop: u32,
    /// Slots in VOLATILITY_SPIKE.
    pub volatility_spike: u32,
    /// Never more slots than this, whatever the regime says.
    pub hard_cap: u32,
    /// A rotation needs (new - weakest) / weakest above this.
    pub rotation_threshold: f64,
    /// How long a rotation may wait for its close (seconds).
    pub rotation_lock_ttl_secs: u64,
    /// Weakness added per hour a position is held.
    pub age_penalty_per_hour: f64,
    /// The most the age penalty can add.
    pub age_penalty_cap: f64,
}

impl Default for SlotsConfig {
    fn default() -> Self {
        SlotsConfig {
            enabled: true,
            base: 4,
            trend_strong: 6,
            chop: 3,
            volatility_spike: 3,
            hard_cap: 10,
            rotation_threshold: 0.15,
            rotation_lock_ttl_secs: 120,
            age_penalty_per_hour: 0.001,
            age_penalty_cap: 0.05,
        }
    }
}

impl SlotsConfig {
    /// Checks the ranges of `[slots]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let s = self;
        v.int("slots.hard_cap", s.hard_cap.into(), 1, 125);
        for (key, n) in [
            ("slots.base", s.base),
            ("slots.trend_strong", s.trend_strong),
            ("slots.chop", s.chop),
            ("slots.volatility_spike", s.volatility_spike),
        ] {
            v.int(key, n.into(), 1, 125);
        }
        v.num("slots.rotation_threshold", s.rotation_threshold, 0.0, 10.0);
        v.int(
            "slots.rotation_lock_ttl_secs",
            s.rotation_lock_ttl_secs,
            1,
            3600,
        );
        v.num(
            "slots.age_penalty_per_hour",
            s.age_penalty_per_hour,
            0.0,
            1.0,
        );
        v.num("slots.age_penalty_cap", s.age_penalty_cap, 0.0, 1.0);
    }
}

/// The regime classifier's thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegimeConfig {
    /// Whose klines decide the regime.
    pub reference: RegimeReference,
    /// Fewer closed bars than this: UNKNOWN.
    pub min_bars: u32,
    /// atr_pct above this: VOLATILITY_SPIKE.
    pub volatility_spike_atr_pct: f64,
    /// trend above this (with low ATR): TREND_STRONG.
    pub trend_strong_trend: f64,
    /// TREND_STRONG also needs atr_pct below this.
    pub trend_strong_max_atr_pct: f64,
    /// trend below this: CHOP.
    pub chop_trend: f64,
    /// trend at or above this: TREND_MODERATE.
    pub trend_moderate_trend: f64,
    /// The newest closed bar may be at most this old (seconds) before data counts as stale.
    pub max_kline_age_secs: u64,
}

impl Default for RegimeConfig {
    fn default() -> Self {
        RegimeConfig {
            reference: RegimeReference::Symbol(Symbol::parse("BTCUSDT").expect("valid")),
            min_bars: 60,
            volatility_spike_atr_pct: 0.03,
            trend_strong_trend: 0.05,
            trend_strong_max_atr_pct: 0.02,
            chop_trend: 0.01,
            trend_moderate_trend: 0.025,
            max_kline_age_secs: 7200,
        }
    }
}

impl RegimeConfig {
    /// Checks the ranges of `[regime]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let r = self;
        v.int("regime.min_bars", r.min_bars.into(), 51, 100_000);
        v.num(
            "regime.volatility_spike_atr_pct",
            r.volatility_spike_atr_pct,
            0.0,
            1.0,
        );
        v.num("regime.trend_strong_trend", r.trend_strong_trend, 0.0, 1.0);
        v.num(
            "regime.trend_strong_max_atr_pct",
            r.trend_strong_max_atr_pct,
            0.0,
            1.0,
        );
        v.num("regime.chop_trend", r.chop_trend, 0.0, 1.0);
        v.num(
            "regime.trend_moderate_trend",
            r.trend_moderate_trend,
            0.0,
            1.0,
        );
        v.int(
            "regime.max_kline_age_secs",
            r.max_kline_age_secs,
            3600,
            7 * 86400,
        );
    }
}

/// The correlation cap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    /// Block above this correlation.
    pub max: f64,
    /// How many aligned 1 h log returns the correlation needs.
    pub window: u32,
    /// Multiply by the sides' signs, so that a long and a short hedge rather than concentrate.
    pub direction_aware: bool,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            max: 0.80,
            window: 100,
            direction_aware: true,
        }
    }
}

impl CorrelationConfig {
    /// Checks the ranges of `[correlation]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        v.num("correlation.max", self.max, 0.0, 1.0);
        v.int("correlation.window", self.window.into(), 10, 5000);
    }
}

/// Count and notional caps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FundsConfig {
    /// Projected margin / equity above this fraction blocks.
    pub max_margin_usage: f64,
    /// Open + reserved positions may not exceed this.
    pub max_open_positions: u32,
    /// One open's notional may not exceed this (USDT).
    pub max_notional_per_trade_usdt: f64,
    /// Projected total notional may not exceed this (USDT).
    pub max_total_notional_usdt: f64,
    /// Leverage assumed for plans that carry none.
    pub default_leverage: u32,
}

impl Default for FundsConfig {
    fn default() -> Self {
        FundsConfig {
            max_margin_usage: 0.65,
            max_open_positions: 10,
            max_notional_per_trade_usdt: 200.0,
            max_total_notional_usdt: 2000.0,
            default_leverage: 5,
        }
    }
}

impl FundsConfig {
    /// Checks the ranges of `[funds]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let f = self;
        v.num("funds.max_margin_usage", f.max_margin_usage, 0.0, 1.0);
        v.int(
            "funds.max_open_positions",
            f.max_open_positions.into(),
            1,
            125,
        );
        v.num(
            "funds.max_notional_per_trade_usdt",
            f.max_notional_per_trade_usdt,
            0.0,
            1e9,
        );
        v.num(
            "funds.max_total_notional_usdt",
            f.max_total_notional_usdt,
            0.0,
            1e10,
        );
        v.int("funds.default_leverage", f.default_leverage.into(), 1, 125);
    }
}

/// Cooldown and execution-rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CadenceConfig {
    /// No second open on a symbol within this many seconds.
    pub symbol_cooldown_secs: u64,
    /// At most this many opens in any sliding hour.
    pub max_exec_per_hour: u32,
    /// At most this many opens in any sliding 5 minutes.
    pub max_exec_per_5min: u32,
}

impl Default for CadenceConfig {
    fn default() -> Self {
        CadenceConfig {
            symbol_cooldown_secs: 60,
            max_exec_per_hour: 3,
            max_exec_per_5min: 2,
        }
    }
}

impl CadenceConfig {
    /// Checks the ranges of `[cadence]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let c = self;
        v.int(
            "cadence.symbol_cooldown_secs",
            c.symbol_cooldown_secs,
            0,
            86400,
        );
        v.int(
            "cadence.max_exec_per_hour",
            c.max_exec_per_hour.into(),
            1,
            10_000,
        );
        v.int(
            "cadence.max_exec_per_5min",
            c.max_exec_per_5min.into(),
            1,
            10_000,
        );
    }
}

/// The kill score gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KillScoreConfig {
    /// At or above: critical, the open is blocked.
    pub critical: f64,
    /// Above this (and below critical) the quantity is scaled down linearly.
    pub open_threshold: f64,
    /// The scale reached at the critical score.
    pub min_qty_scale: f64,
    /// A critical score also switches the account to REDUCING.
    pub auto_disarm: bool,
    /// Let a critical kill score block closes too (off by default: closing is never harder).
    pub close_kill_score_block: bool,
}

impl Default for KillScoreConfig {
    fn default() -> Self {
        KillScoreConfig {
            critical: 0.80,
            open_threshold: 0.65,
            min_qty_scale: 0.25,
            auto_disarm: true,
            close_kill_score_block: false,
        }
    }
}

impl KillScoreConfig {
    /// Checks the ranges of `[kill_score]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let k = self;
        v.num("kill_score.critical", k.critical, 0.0, 1.0);
        v.num("kill_score.open_threshold", k.open_threshold, 0.0, 1.0);
        v.num("kill_score.min_qty_scale", k.min_qty_scale, 0.0, 1.0);
        if !(k.open_threshold < k.critical) {
            v.push(
                "kill_score.open_threshold",
                k.open_threshold.to_string(),
                format!("below kill_score.critical ({})", k.critical),
            );
        }
    }
}

/// Intent-time drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Intents older than this (seconds) get a warning in the trace.
    pub max_intent_age_secs: u64,
    /// Block when open positions now and at intent time differ by more than this.
    pub max_position_count_drift: u32,
    /// Block when exposure now and at intent time differ by more than this.
    pub max_exposure_drift: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            max_intent_age_secs: 30,
            max_position_count_drift: 2,
            max_exposure_drift: 0.15,
        }
    }
}

impl DriftConfig {
    /// Checks the ranges of `[drift]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let d = self;
        v.int("drift.max_intent_age_secs", d.max_intent_age_secs, 0, 86400);
        v.int(
            "drift.max_position_count_drift",
            d.max_position_count_drift.into(),
            0,
            125,
        );
        v.num("drift.max_exposure_drift", d.max_exposure_drift, 0.0, 100.0);
    }
}

/// Capital allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CapitalConfig {
    /// Enforce allocations in testnet too (production always enforces them).
    pub enforce_in_testnet: bool,
}

/// Exchange connection settings that are not secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BinanceConfig {
    /// Override of the REST base URL (else testnet or production by mode).
    pub base_url: Option<String>,
    /// Override of the spot API base URL, where the key's restrictions are read in production
    /// mode (else `https://api.binance.com`).
    pub spot_base_url: Option<String>,
    /// Legacy switch of the deployment (GOV_TESTNET_ENABLE_P29), kept so the name is accepted.
    pub testnet_enable_p29: bool,
    /// Opens are refused (`exchange_clock_offset`) while the exchange's clock is further than
    /// this from ours, in ms.
    pub max_clock_offset_ms: u64,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            base_url: None,
            spot_base_url: None,
            testnet_enable_p29: false,
            max_clock_offset_ms: 500,
        }
    }
}

impl BinanceConfig {
    /// Checks the ranges of `[binance]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        for (key, url) in [
            ("binance.base_url", &self.base_url),
            ("binance.spot_base_url", &self.spot_base_url),
        ] {
            if let Some(url) = url {
                v.text(
                    key,
                    url,
                    |u| u.starts_with("https://") || u.starts_with("http://"),
                    "an http:// or https:// URL",
                );
            }
        }
        if self.max_clock_offset_ms == 0 {
            v.push(
                "binance.max_clock_offset_ms",
                "0".to_owned(),
                "at least 1 ms".to_owned(),
            );
        }
    }
}

/// One rung of the heat ladder: what each close proposal becomes in a bucket. UPDATE_SL and
/// HOLD are never calibrated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeatRung {
    /// What `FULL_CLOSE_PROPOSED` becomes.
    #[serde(rename = "FULL_CLOSE_PROPOSED")]
    pub full_close: HarvestAction,
    /// What `PARTIAL_75` becomes.
    #[serde(rename = "PARTIAL_75")]
    pub partial_75: HarvestAction,
    /// What `PARTIAL_50` becomes.
    #[serde(rename = "PARTIAL_50")]
    pub partial_50: HarvestAction,
    /// What `PARTIAL_25` becomes.
    #[serde(rename = "PARTIAL_25")]
    pub partial_25: HarvestAction,
}

impl HeatRung {
    /// The rung that changes nothing.
    pub fn identity() -> Self {
        HeatRung {
            full_close: HarvestAction::Close(CloseKind::Full),
            partial_75: HarvestAction::Close(CloseKind::Partial75),
            partial_50: HarvestAction::Close(CloseKind::Partial50),
            partial_25: HarvestAction::Close(CloseKind::Partial25),
        }
    }

    /// What `action` becomes on this rung.
    pub fn apply(&self, action: HarvestAction) -> HarvestAction {
        match action {
            HarvestAction::Close(CloseKind::Full) => self.full_close,
            HarvestAction::Close(CloseKind::Partial75) => self.partial_75,
            HarvestAction::Close(CloseKind::Partial50) => self.partial_50,
            HarvestAction::Close(CloseKind::Partial25) => self.partial_25,
            other => other,
        }
    }
}

/// The portfolio heat gate's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeatConfig {
    /// shadow or enforce (P26_MODE).
    pub mode: HeatMode,
    /// `k` of `heat = 1 - exp(-k * Σ |notional| * sigma / equity)`.
    pub k: f64,
    /// Heat from which the portfolio is WARM (below: COLD).
    pub warm_at: f64,
    /// Heat from which the portfolio is HOT.
    pub hot_at: f64,
    /// What closes become when WARM.
    pub warm: HeatRung,
    /// What closes become when HOT.
    pub hot: HeatRung,
}

impl Default for HeatConfig {
    fn default() -> Self {
        let p = |k| HarvestAction::Close(k);
        HeatConfig {
            mode: HeatMode::default(),
            k: 8.0,
            warm_at: 0.25,
            hot_at: 0.65,
            warm: HeatRung {
                full_close: p(CloseKind::Partial75),
                ..HeatRung::identity()
            },
            hot: HeatRung {
                full_close: p(CloseKind::Partial50),
                partial_75: p(CloseKind::Partial50),
                partial_50: p(CloseKind::Partial25),
                partial_25: p(CloseKind::Partial25),
            },
        }
    }
}

impl HeatConfig {
    /// Checks the ranges of `[heat]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let h = self;
        v.num("heat.k", h.k, 0.0, 1000.0);
        v.num("heat.warm_at", h.warm_at, 0.0, 1.0);
        v.num("heat.hot_at", h.hot_at, 0.0, 1.0);
        if !(h.warm_at < h.hot_at) {
            v.push(
                "heat.warm_at",
                h.warm_at.to_string(),
                format!("below heat.hot_at ({})", h.hot_at),
            );
        }
    }
}

/// The whole configuration. Every key is optional; the defaults are what the original system ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// testnet or production.
    pub mode: Mode,
    /// Prefix of every Redis key (use a hash tag on Redis Cluster).
    pub key_prefix: String,
    /// Lifetime of a permit and of its reservation (seconds).
    pub permit_ttl_secs: u64,
    /// On a Redis Cluster, how many replicas must hold an executor's take of a permit before
    /// its order is placed (`WAIT`): a failover then cannot lose the permit's commit or its
    /// take. 0 turns the wait off.
    pub permit_replicas: u32,
    /// Lifetime of a block record (seconds).
    pub block_ttl_secs: u64,
    /// Lifetime of an exit lock (seconds).
    pub exit_lock_ttl_secs: u64,
    /// Slots and rotation.
    pub slots: SlotsConfig,
    /// Regime classifier.
    pub regime: RegimeConfig,
    /// Correlation cap.
    pub correlation: CorrelationConfig,
    /// Margin, count and notional caps.
    pub funds: FundsConfig,
    /// Cooldown and rate limits.
    pub cadence: CadenceConfig,
    /// Kill score.
    pub kill_score: KillScoreConfig,
    /// Intent-time drift.
    pub drift: DriftConfig,
    /// Capital allocation.
    pub capital: CapitalConfig,
    /// Exchange settings.
    pub binance: BinanceConfig,
    /// Heat gate.
    pub heat: HeatConfig,
    /// Per-gate mode: enforce, shadow or off.
    pub gates: GatesConfig,
    /// Drawdown halt with auto-resume.
    pub drawdown: DrawdownConfig,
    /// Loss-streak guard.
    pub loss_streak: LossStreakConfig,
    /// Price collar on limit prices.
    pub price_collar: PriceCollarConfig,
    /// The account's leverage cap.
    pub leverage: LeverageConfig,
    /// Liquidation distance and the account margin ratio.
    pub liquidation: LiquidationConfig,
    /// Optional long/short slot maxima.
    pub side_slots: SideSlotsConfig,
    /// Submit throttle.
    pub throttle: ThrottleConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Testnet,
            key_prefix: "quantum:".to_owned(),
            permit_ttl_secs: 60,
            permit_replicas: 1,
            block_ttl_secs: 3600,
            exit_lock_ttl_secs: 120,
            slots: SlotsConfig::default(),
            regime: RegimeConfig::default(),
            correlation: CorrelationConfig::default(),
            funds: FundsConfig::default(),
            cadence: CadenceConfig::default(),
            kill_score: KillScoreConfig::default(),
            drift: DriftConfig::default(),
            capital: CapitalConfig::default(),
            binance: BinanceConfig::default(),
            heat: HeatConfig::default(),
            gates: GatesConfig::default(),
            drawdown: DrawdownConfig::default(),
            loss_streak: LossStreakConfig::default(),
            price_collar: PriceCollarConfig::default(),
            leverage: LeverageConfig::default(),
            liquidation: LiquidationConfig::default(),
            side_slots: SideSlotsConfig::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// The longest an order can still take effect after it was sent: the exchange's request window
/// (Binance's `recvWindow`, as the executor signs its orders). A close's exit lock must outlive
/// its permit by more than this.
pub const ORDER_REACH_SECS: u64 = 5;

impl Config {
    /// Checks every range and cross-field rule; returns all violations.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut v = Validator::default();
        v.text(
            "key_prefix",
            &self.key_prefix,
            |s| !s.is_empty() && !s.contains(char::is_whitespace),
            "non-empty, no white space",
        );
        v.int("permit_ttl_secs", self.permit_ttl_secs, 1, 3600);
        v.int("permit_replicas", u64::from(self.permit_replicas), 0, 5);
        v.int("block_ttl_secs", self.block_ttl_secs, 1, 7 * 86400);
        v.int("exit_lock_ttl_secs", self.exit_lock_ttl_secs, 1, 3600);
        // A close sent at its permit's last moment can reach the exchange ORDER_REACH_SECS
        // later; were its exit lock gone by then, a second close of the symbol could be
        // allowed while the first can still fill.
        if self.exit_lock_ttl_secs <= self.permit_ttl_secs + ORDER_REACH_SECS {
            v.push(
                "exit_lock_ttl_secs",
                self.exit_lock_ttl_secs.to_string(),
                format!(
                    "more than permit_ttl_secs ({}) + {ORDER_REACH_SECS} s (an order's reach)",
                    self.permit_ttl_secs
                ),
            );
        }
        self.slots.validate(&mut v);
        self.regime.validate(&mut v);
        self.correlation.validate(&mut v);
        self.funds.validate(&mut v);
        self.cadence.validate(&mut v);
        self.kill_score.validate(&mut v);
        self.drift.validate(&mut v);
        self.gates.validate(&mut v);
        self.drawdown.validate(&mut v);
        self.loss_streak.validate(&mut v);
        self.price_collar.validate(&mut v);
        self.leverage.validate(&mut v);
        self.liquidation.validate(&mut v);
        self.side_slots.validate(&mut v);
        self.throttle.validate(&mut v);
        self.heat.validate(&mut v);
        self.binance.validate(&mut v);
        v.into_errors()
    }

    /// Capital allocation is mandatory in production, optional in testnet.
    pub fn capital_allocation_required(&self) -> bool {
        self.mode == Mode::Production || self.capital.enforce_in_testnet
    }
}

/// How a gate acts on its refusal.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    /// A refusal blocks the plan.
    #[default]
    Enforce,
    /// A refusal is recorded (trace, decision record, report) and blocks nothing.
    Shadow,
    /// The gate is not evaluated (its trace line says so).
    Off,
}

impl GateMode {
    /// The name in the config, the trace and the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            GateMode::Enforce => "enforce",
            GateMode::Shadow => "shadow",
            GateMode::Off => "off",
        }
    }
}

/// The mode of every gate (`[gates]`). The integrity gates (trading state, exchange state,
/// market data, closes) keep the governor fail-closed and honour the operator's halt: they
/// accept `enforce` only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)] // each field is the gate of the same name (README, "Configuration")
pub struct GatesConfig {
    pub trading_state: GateMode,
    pub exchange_state: GateMode,
    pub market_data: GateMode,
    pub close: GateMode,
    pub policy: GateMode,
    pub drift: GateMode,
    pub kill_score: GateMode,
    pub cooldown: GateMode,
    pub rate_limit: GateMode,
    pub slots: GateMode,
    pub correlation: GateMode,
    pub margin: GateMode,
    pub fund_caps: GateMode,
    pub capital: GateMode,
    pub drawdown_halt: GateMode,
    pub loss_streak: GateMode,
    pub price_collar: GateMode,
    pub leverage_cap: GateMode,
    pub leverage_bracket: GateMode,
    pub liquidation_distance: GateMode,
    pub account_margin_ratio: GateMode,
    pub side_slots: GateMode,
    pub submit_throttle: GateMode,
}

impl Default for GatesConfig {
    fn default() -> Self {
        let e = GateMode::Enforce;
        GatesConfig {
            trading_state: e,
            exchange_state: e,
            market_data: e,
            close: e,
            policy: e,
            drift: e,
            kill_score: e,
            cooldown: e,
            rate_limit: e,
            slots: e,
            correlation: e,
            margin: e,
            fund_caps: e,
            capital: e,
            drawdown_halt: e,
            loss_streak: e,
            price_collar: e,
            leverage_cap: e,
            leverage_bracket: e,
            liquidation_distance: e,
            account_margin_ratio: e,
            side_slots: e,
            submit_throttle: e,
        }
    }
}

impl GatesConfig {
    /// Checks the ranges of `[gates]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        for (key, mode) in self.integrity() {
            if mode != GateMode::Enforce {
                v.push(
                    key,
                    mode.as_str().to_owned(),
                    "enforce only: this gate keeps the governor fail-closed (or is the \
                 operator's halt); it cannot be shadowed or turned off"
                        .to_owned(),
                );
            }
        }
    }
}

impl GatesConfig {
    /// The integrity gates, which accept `enforce` only, with their modes.
    pub fn integrity(&self) -> [(&'static str, GateMode); 4] {
        [
            ("gates.trading_state", self.trading_state),
            ("gates.exchange_state", self.exchange_state),
            ("gates.market_data", self.market_data),
            ("gates.close", self.close),
        ]
    }
}

/// Drawdown halt with auto-resume (`[drawdown]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrawdownConfig {
    /// Drawdown from the window's equity peak (a fraction) above which opens stop and the
    /// trading state goes to REDUCING.
    pub limit: f64,
    /// The rolling window the peak is taken over (seconds).
    pub window_secs: u64,
    /// Resume only once the drawdown is back under this (a fraction, below `limit`).
    pub resume_below: f64,
    /// Resume no earlier than this long after the halt (seconds).
    pub resume_after_secs: u64,
    /// Resume by itself; `false`: stay REDUCING until an operator resumes.
    pub auto_resume: bool,
}

impl Default for DrawdownConfig {
    fn default() -> Self {
        DrawdownConfig {
            limit: 0.10,
            window_secs: 86_400,
            resume_below: 0.05,
            resume_after_secs: 3_600,
            auto_resume: true,
        }
    }
}

impl DrawdownConfig {
    /// Checks the ranges of `[drawdown]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let dd = self;
        v.num("drawdown.limit", dd.limit, 0.0, 1.0);
        v.num("drawdown.resume_below", dd.resume_below, 0.0, 1.0);
        if !(dd.resume_below <= dd.limit) {
            v.push(
                "drawdown.resume_below",
                dd.resume_below.to_string(),
                format!("at most drawdown.limit ({})", dd.limit),
            );
        }
        v.int("drawdown.window_secs", dd.window_secs, 3_600, 30 * 86_400);
        v.int(
            "drawdown.resume_after_secs",
            dd.resume_after_secs,
            0,
            30 * 86_400,
        );
    }
}

/// Loss-streak guard (`[loss_streak]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossStreakConfig {
    /// Losing closes in a row on one symbol that lock opens on it.
    pub symbol_losses: u32,
    /// Losing closes in a row across the account that lock every open.
    pub global_losses: u32,
    /// Only closes this recent count (seconds).
    pub window_secs: u64,
    /// How long the lock lasts after the last loss (seconds).
    pub lock_secs: u64,
}

impl Default for LossStreakConfig {
    fn default() -> Self {
        LossStreakConfig {
            symbol_losses: 3,
            global_losses: 5,
            window_secs: 6 * 3_600,
            lock_secs: 6 * 3_600,
        }
    }
}

impl LossStreakConfig {
    /// Checks the ranges of `[loss_streak]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        let ls = self;
        v.int(
            "loss_streak.symbol_losses",
            ls.symbol_losses.into(),
            1,
            1_000,
        );
        v.int(
            "loss_streak.global_losses",
            ls.global_losses.into(),
            1,
            1_000,
        );
        v.int("loss_streak.window_secs", ls.window_secs, 60, 30 * 86_400);
        v.int("loss_streak.lock_secs", ls.lock_secs, 1, 30 * 86_400);
    }
}

/// Price collar (`[price_collar]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceCollarConfig {
    /// An open's limit price may be at most this far from the mark (a fraction).
    pub max_deviation: f64,
}

impl Default for PriceCollarConfig {
    fn default() -> Self {
        PriceCollarConfig {
            max_deviation: 0.02,
        }
    }
}

impl PriceCollarConfig {
    /// Checks the ranges of `[price_collar]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        v.num("price_collar.max_deviation", self.max_deviation, 0.0, 1.0);
    }
}

/// Leverage cap (`[leverage]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeverageConfig {
    /// No open above this leverage.
    pub max: u32,
}

impl Default for LeverageConfig {
    fn default() -> Self {
        LeverageConfig { max: 20 }
    }
}

impl LeverageConfig {
    /// Checks the ranges of `[leverage]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        v.int("leverage.max", self.max.into(), 1, 125);
    }
}

/// How the account margins its positions (Binance's `marginType`; one-way position mode).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarginMode {
    /// One wallet backs every position (Binance's default).
    Cross,
    /// Each position is backed by its own margin only.
    Isolated,
}

impl MarginMode {
    /// The name in the config and the trace.
    pub fn as_str(self) -> &'static str {
        match self {
            MarginMode::Cross => "cross",
            MarginMode::Isolated => "isolated",
        }
    }
}

/// Liquidation distance and account margin ratio (`[liquidation]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiquidationConfig {
    /// The account's margin mode, which decides what backs a position against liquidation.
    pub margin_mode: MarginMode,
    /// An open's projected liquidation price must be at least this far from the mark (a
    /// fraction of the mark)…
    pub min_distance_pct: f64,
    /// …and at least this many of the symbol's daily volatilities (from its ATR) away; 0 turns
    /// the volatility part off.
    pub min_distance_sigmas: f64,
    /// No open that would take Binance's account margin ratio (maintenance margin over margin
    /// balance; liquidation at 1) above this.
    pub max_account_margin_ratio: f64,
    /// Above this ratio the governor switches to REDUCING and publishes close plans itself.
    pub derisk_at: f64,
    /// The ratio must be back under this…
    pub derisk_resume_below: f64,
    /// …and this long must have passed since the de-risk began, for trading to resume by itself.
    pub derisk_resume_after_secs: u64,
}

impl Default for LiquidationConfig {
    fn default() -> Self {
        LiquidationConfig {
            margin_mode: MarginMode::Cross,
            min_distance_pct: 0.05,
            min_distance_sigmas: 3.0,
            max_account_margin_ratio: 0.05,
            derisk_at: 0.10,
            derisk_resume_below: 0.05,
            derisk_resume_after_secs: 3600,
        }
    }
}

impl LiquidationConfig {
    /// Checks the ranges of `[liquidation]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        v.num(
            "liquidation.min_distance_pct",
            self.min_distance_pct,
            0.0,
            1.0,
        );
        let sigmas = self.min_distance_sigmas;
        if !(sigmas.is_finite() && (0.0..=20.0).contains(&sigmas)) {
            v.push(
                "liquidation.min_distance_sigmas",
                sigmas.to_string(),
                "a number from 0 to 20".to_owned(),
            );
        }
        v.num(
            "liquidation.max_account_margin_ratio",
            self.max_account_margin_ratio,
            0.0,
            1.0,
        );
        v.num("liquidation.derisk_at", self.derisk_at, 0.0, 1.0);
        v.num(
            "liquidation.derisk_resume_below",
            self.derisk_resume_below,
            0.0,
            1.0,
        );
        if self.derisk_resume_below >= self.derisk_at {
            v.push(
                "liquidation.derisk_resume_below",
                self.derisk_resume_below.to_string(),
                format!("below liquidation.derisk_at ({})", self.derisk_at),
            );
        }
        v.int(
            "liquidation.derisk_resume_after_secs",
            self.derisk_resume_after_secs,
            0,
            30 * 86_400,
        );
    }
}

/// Per-side slots (`[side_slots]`): optional maxima within the desired slots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SideSlotsConfig {
    /// At most this many long slots (none: no side limit).
    pub max_long: Option<u32>,
    /// At most this many short slots (none: no side limit).
    pub max_short: Option<u32>,
}

impl SideSlotsConfig {
    /// Checks the ranges of `[side_slots]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        for (key, max) in [
            ("side_slots.max_long", self.max_long),
            ("side_slots.max_short", self.max_short),
        ] {
            if let Some(n) = max {
                v.int(key, n.into(), 0, 125);
            }
        }
    }
}

/// Submit throttle (`[throttle]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// At most this many open permits per second across the account.
    pub max_permits_per_sec: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_permits_per_sec: 10,
        }
    }
}

impl ThrottleConfig {
    /// Checks the ranges of `[throttle]`.
    pub(super) fn validate(&self, v: &mut Validator) {
        v.int(
            "throttle.max_permits_per_sec",
            self.max_permits_per_sec.into(),
            1,
            100_000,
        );
    }
}

//! The governor's typed configuration: a TOML file where every key is optional, overridden by
//! the environment names the deployment already uses (docs/wire-contract.md), validated all at once.
//!
//! Loading is pure: the caller hands in the file's text and the environment's pairs, so that a
//! test can check every override without touching the process environment. Every unknown key,
//! mistyped value and out-of-range value is reported in one go, naming the key (and the
//! environment variable it came from) with the value and the allowed range.

mod protections;

pub use protections::{
    DrawdownConfig, GateMode, GatesConfig, LossStreakConfig, PriceCollarConfig, SideSlotsConfig,
    ThrottleConfig,
};

use crate::harvest_action::HarvestAction;
use crate::plan::CloseKind;
use crate::types::Symbol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

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
            side_slots: SideSlotsConfig::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// One invalid setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// The TOML key (`funds.max_margin_usage`), or the file itself for syntax errors.
    pub key: String,
    /// The environment variable the value came from, if it came from one.
    pub env: Option<String>,
    /// The value as given.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env {
            Some(env) => write!(
                f,
                "{} (from {env}) = {}: {}",
                self.key, self.value, self.allowed
            ),
            None => write!(f, "{} = {}: {}", self.key, self.value, self.allowed),
        }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Copy, Clone)]
enum EnvKind {
    Bool,
    Int,
    Float,
    Text,
}

/// The environment names of docs/wire-contract.md and the key each one sets.
const ENV_KEYS: &[(&str, &str, EnvKind)] = &[
    ("GOV_ACTIVE_SLOTS_ENABLED", "slots.enabled", EnvKind::Bool),
    ("GOV_ACTIVE_SLOTS_BASE", "slots.base", EnvKind::Int),
    (
        "GOV_ACTIVE_SLOTS_TREND_STRONG",
        "slots.trend_strong",
        EnvKind::Int,
    ),
    ("GOV_ACTIVE_SLOTS_CHOP", "slots.chop", EnvKind::Int),
    (
        "GOV_ROTATION_THRESHOLD",
        "slots.rotation_threshold",
        EnvKind::Float,
    ),
    (
        "GOV_ROTATION_LOCK_TTL",
        "slots.rotation_lock_ttl_secs",
        EnvKind::Int,
    ),
    ("GOV_MAX_CORRELATION", "correlation.max", EnvKind::Float),
    (
        "GOV_MAX_MARGIN_USAGE_PCT",
        "funds.max_margin_usage",
        EnvKind::Float,
    ),
    (
        "GOV_MAX_OPEN_POSITIONS",
        "funds.max_open_positions",
        EnvKind::Int,
    ),
    (
        "GOV_MAX_NOTIONAL_PER_TRADE_USDT",
        "funds.max_notional_per_trade_usdt",
        EnvKind::Float,
    ),
    (
        "GOV_MAX_TOTAL_NOTIONAL_USDT",
        "funds.max_total_notional_usdt",
        EnvKind::Float,
    ),
    (
        "GOV_SYMBOL_COOLDOWN_SECONDS",
        "cadence.symbol_cooldown_secs",
        EnvKind::Int,
    ),
    (
        "GOV_MAX_EXEC_PER_HOUR",
        "cadence.max_exec_per_hour",
        EnvKind::Int,
    ),
    (
        "GOV_MAX_EXEC_PER_5MIN",
        "cadence.max_exec_per_5min",
        EnvKind::Int,
    ),
    ("GOV_PERMIT_TTL", "permit_ttl_secs", EnvKind::Int),
    ("GOV_KEY_PREFIX", "key_prefix", EnvKind::Text),
    ("GOV_BINANCE_BASE_URL", "binance.base_url", EnvKind::Text),
    (
        "GOV_BINANCE_SPOT_BASE_URL",
        "binance.spot_base_url",
        EnvKind::Text,
    ),
    (
        "GOV_MAX_CLOCK_OFFSET_MS",
        "binance.max_clock_offset_ms",
        EnvKind::Int,
    ),
    (
        "GOV_TESTNET_ENABLE_P29",
        "binance.testnet_enable_p29",
        EnvKind::Bool,
    ),
    ("GOV_MODE", "mode", EnvKind::Text),
    ("P26_MODE", "heat.mode", EnvKind::Text),
    ("GOV_DRAWDOWN_HALT_PCT", "drawdown.limit", EnvKind::Float),
    (
        "GOV_DRAWDOWN_WINDOW_SECS",
        "drawdown.window_secs",
        EnvKind::Int,
    ),
    (
        "GOV_DRAWDOWN_RESUME_PCT",
        "drawdown.resume_below",
        EnvKind::Float,
    ),
    (
        "GOV_DRAWDOWN_RESUME_AFTER_SECS",
        "drawdown.resume_after_secs",
        EnvKind::Int,
    ),
    (
        "GOV_DRAWDOWN_AUTO_RESUME",
        "drawdown.auto_resume",
        EnvKind::Bool,
    ),
    (
        "GOV_LOSS_STREAK_SYMBOL",
        "loss_streak.symbol_losses",
        EnvKind::Int,
    ),
    (
        "GOV_LOSS_STREAK_GLOBAL",
        "loss_streak.global_losses",
        EnvKind::Int,
    ),
    (
        "GOV_LOSS_STREAK_WINDOW_SECS",
        "loss_streak.window_secs",
        EnvKind::Int,
    ),
    (
        "GOV_LOSS_STREAK_LOCK_SECS",
        "loss_streak.lock_secs",
        EnvKind::Int,
    ),
    (
        "GOV_PRICE_COLLAR_PCT",
        "price_collar.max_deviation",
        EnvKind::Float,
    ),
    ("GOV_MAX_LONG_SLOTS", "side_slots.max_long", EnvKind::Int),
    ("GOV_MAX_SHORT_SLOTS", "side_slots.max_short", EnvKind::Int),
    (
        "GOV_MAX_PERMITS_PER_SECOND",
        "throttle.max_permits_per_sec",
        EnvKind::Int,
    ),
    ("GOV_GATE_POLICY_MODE", "gates.policy", EnvKind::Text),
    ("GOV_GATE_DRIFT_MODE", "gates.drift", EnvKind::Text),
    (
        "GOV_GATE_KILL_SCORE_MODE",
        "gates.kill_score",
        EnvKind::Text,
    ),
    ("GOV_GATE_COOLDOWN_MODE", "gates.cooldown", EnvKind::Text),
    (
        "GOV_GATE_RATE_LIMIT_MODE",
        "gates.rate_limit",
        EnvKind::Text,
    ),
    ("GOV_GATE_SLOTS_MODE", "gates.slots", EnvKind::Text),
    (
        "GOV_GATE_CORRELATION_MODE",
        "gates.correlation",
        EnvKind::Text,
    ),
    ("GOV_GATE_MARGIN_MODE", "gates.margin", EnvKind::Text),
    ("GOV_GATE_FUND_CAPS_MODE", "gates.fund_caps", EnvKind::Text),
    ("GOV_GATE_CAPITAL_MODE", "gates.capital", EnvKind::Text),
    (
        "GOV_GATE_DRAWDOWN_HALT_MODE",
        "gates.drawdown_halt",
        EnvKind::Text,
    ),
    (
        "GOV_GATE_LOSS_STREAK_MODE",
        "gates.loss_streak",
        EnvKind::Text,
    ),
    (
        "GOV_GATE_PRICE_COLLAR_MODE",
        "gates.price_collar",
        EnvKind::Text,
    ),
    (
        "GOV_GATE_SIDE_SLOTS_MODE",
        "gates.side_slots",
        EnvKind::Text,
    ),
    (
        "GOV_GATE_SUBMIT_THROTTLE_MODE",
        "gates.submit_throttle",
        EnvKind::Text,
    ),
];

/// `GOV_` names that are read elsewhere (secrets stay out of the config, so it can be printed).
const ENV_SECRETS: &[&str] = &["GOV_ADMIN_TOKEN"];

/// The environment variable that sets `key`, if any.
pub fn env_name_for(key: &str) -> Option<&'static str> {
    ENV_KEYS
        .iter()
        .find(|(_, k, _)| *k == key)
        .map(|(e, _, _)| *e)
}

/// Every environment name that sets a config key, with its key (for docs and tests).
pub fn env_names() -> impl Iterator<Item = (&'static str, &'static str)> {
    ENV_KEYS.iter().map(|(e, k, _)| (*e, *k))
}

fn env_value(kind: EnvKind, raw: &str) -> Result<toml::Value, String> {
    match kind {
        EnvKind::Bool => match raw {
            "true" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err("true, false, 1 or 0".to_owned()),
        },
        EnvKind::Int => crate::plan::parse_integer(raw)
            .map(toml::Value::Integer)
            .map_err(|e| format!("a whole number ({e})")),
        EnvKind::Float => crate::plan::parse_decimal(raw)
            .map(toml::Value::Float)
            .map_err(|e| format!("a number ({e})")),
        EnvKind::Text => Ok(toml::Value::String(raw.to_owned())),
    }
}

/// Sets `path` (`section.key`) in `table`; the error says which part is a value where a
/// section is needed (`slots = 1` in the file, then `GOV_ACTIVE_SLOTS_BASE`).
fn insert_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().expect("a key has at least one part");
    let mut cur = table;
    for part in parts {
        cur = cur
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                format!("`{part}` is a value here, but `{path}` needs it to be a [{part}] section")
            })?;
    }
    cur.insert(last.to_owned(), value);
    Ok(())
}

fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => leaves(&path, t, out),
            other => out.push((path, other.clone())),
        }
    }
}

fn known_keys() -> Vec<String> {
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
    let mut out = Vec::new();
    leaves("", &defaults, &mut out);
    let mut keys: Vec<String> = out.into_iter().map(|(k, _)| k).collect();
    // Optional keys have no default value, so they do not appear in the serialized defaults.
    keys.push("binance.base_url".to_owned());
    keys.push("binance.spot_base_url".to_owned());
    keys.push("side_slots.max_long".to_owned());
    keys.push("side_slots.max_short".to_owned());
    keys
}

impl Config {
    /// Builds the effective config from an optional TOML text and the environment's pairs.
    /// Returns every problem found, or the validated config.
    pub fn load(
        toml_text: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Config, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut table = match toml_text.map(str::parse::<toml::Table>) {
            None => toml::Table::new(),
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                return Err(vec![ConfigError {
                    key: "<file>".to_owned(),
                    env: None,
                    value: "(not valid TOML)".to_owned(),
                    allowed: e.to_string().trim().to_owned(),
                }])
            }
        };
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        for (name, raw) in env {
            if let Some((env_name, key, kind)) = ENV_KEYS.iter().find(|(e, _, _)| e == name) {
                match env_value(*kind, raw) {
                    Ok(v) => match insert_path(&mut table, key, v) {
                        Ok(()) => {
                            origin.insert((*key).to_owned(), (*env_name).to_owned());
                        }
                        Err(allowed) => errors.push(ConfigError {
                            key: (*key).to_owned(),
                            env: Some(name.clone()),
                            value: raw.clone(),
                            allowed,
                        }),
                    },
                    Err(allowed) => errors.push(ConfigError {
                        key: (*key).to_owned(),
                        env: Some(name.clone()),
                        value: raw.clone(),
                        allowed,
                    }),
                }
            } else if name.starts_with("GOV_") && !ENV_SECRETS.contains(&name.as_str()) {
                errors.push(ConfigError {
                    key: "<environment>".to_owned(),
                    env: Some(name.clone()),
                    value: "(set)".to_owned(),
                    allowed: "not a known GOV_ setting (a typo?); see the README's list".to_owned(),
                });
            }
        }

        // Check each key on its own so that every bad key is reported, not just the first;
        // the keys that are fine are then validated together, so range errors come too.
        // Every key is checked on top of the defaults, so that a partial table (one rung of
        // the heat ladder) keeps the defaults of its other keys.
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        let known = known_keys();
        let mut user_leaves = Vec::new();
        leaves("", &table, &mut user_leaves);
        let mut usable = defaults.clone();
        for (path, value) in &user_leaves {
            let env = origin.get(path).cloned();
            if !known.iter().any(|k| k == path) {
                errors.push(ConfigError {
                    key: path.clone(),
                    env,
                    value: value.to_string(),
                    allowed: "unknown key; `config check` with no file lists every known key"
                        .to_owned(),
                });
                continue;
            }
            let mut single = defaults.clone();
            let checked = insert_path(&mut single, path, value.clone()).and_then(|()| {
                single
                    .try_into::<Config>()
                    .map_err(|e| e.message().trim().to_owned())
            });
            match checked.and_then(|_| insert_path(&mut usable, path, value.clone())) {
                Ok(()) => {}
                Err(allowed) => errors.push(ConfigError {
                    key: path.clone(),
                    env,
                    value: value.to_string(),
                    allowed,
                }),
            }
        }
        let config: Config = usable.try_into().expect("every key was checked on its own");
        for mut problem in config.validate() {
            problem.env = origin.get(&problem.key).cloned();
            errors.push(problem);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Checks every range and cross-field rule; returns all violations.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut v = Validator(Vec::new());
        v.text(
            "key_prefix",
            &self.key_prefix,
            |s| !s.is_empty() && !s.contains(char::is_whitespace),
            "non-empty, no white space",
        );
        v.int("permit_ttl_secs", self.permit_ttl_secs, 1, 3600);
        v.int("block_ttl_secs", self.block_ttl_secs, 1, 7 * 86400);
        v.int("exit_lock_ttl_secs", self.exit_lock_ttl_secs, 1, 3600);
        let s = &self.slots;
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
        let r = &self.regime;
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
        v.num("correlation.max", self.correlation.max, 0.0, 1.0);
        v.int(
            "correlation.window",
            self.correlation.window.into(),
            10,
            5000,
        );
        let f = &self.funds;
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
        let c = &self.cadence;
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
        let k = &self.kill_score;
        v.num("kill_score.critical", k.critical, 0.0, 1.0);
        v.num("kill_score.open_threshold", k.open_threshold, 0.0, 1.0);
        v.num("kill_score.min_qty_scale", k.min_qty_scale, 0.0, 1.0);
        if !(k.open_threshold < k.critical) {
            v.0.push(ConfigError {
                key: "kill_score.open_threshold".to_owned(),
                env: None,
                value: k.open_threshold.to_string(),
                allowed: format!("below kill_score.critical ({})", k.critical),
            });
        }
        let d = &self.drift;
        v.int("drift.max_intent_age_secs", d.max_intent_age_secs, 0, 86400);
        v.int(
            "drift.max_position_count_drift",
            d.max_position_count_drift.into(),
            0,
            125,
        );
        v.num("drift.max_exposure_drift", d.max_exposure_drift, 0.0, 100.0);
        for (key, mode) in self.gates.integrity() {
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
        let dd = &self.drawdown;
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
        let ls = &self.loss_streak;
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
        v.num(
            "price_collar.max_deviation",
            self.price_collar.max_deviation,
            0.0,
            1.0,
        );
        for (key, max) in [
            ("side_slots.max_long", self.side_slots.max_long),
            ("side_slots.max_short", self.side_slots.max_short),
        ] {
            if let Some(n) = max {
                v.int(key, n.into(), 0, 125);
            }
        }
        v.int(
            "throttle.max_permits_per_sec",
            self.throttle.max_permits_per_sec.into(),
            1,
            100_000,
        );
        let h = &self.heat;
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
        for (key, url) in [
            ("binance.base_url", &self.binance.base_url),
            ("binance.spot_base_url", &self.binance.spot_base_url),
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
        if self.binance.max_clock_offset_ms == 0 {
            v.push(
                "binance.max_clock_offset_ms",
                "0".to_owned(),
                "at least 1 ms".to_owned(),
            );
        }
        v.0
    }

    /// Capital allocation is mandatory in production, optional in testnet.
    pub fn capital_allocation_required(&self) -> bool {
        self.mode == Mode::Production || self.capital.enforce_in_testnet
    }

    /// The effective config as TOML (contains no secrets: they are not part of it).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config always serializes")
    }
}

struct Validator(Vec<ConfigError>);

impl Validator {
    fn int(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.push(
                key,
                value.to_string(),
                format!("an integer from {min} to {max}"),
            );
        }
    }

    /// Numbers are open at the lower bound (a cap of 0 is never meant) and closed at the upper.
    fn num(&mut self, key: &str, value: f64, above: f64, max: f64) {
        if !(value.is_finite() && value > above && value <= max) {
            let allowed = format!("a number above {above} and at most {max}");
            self.push(key, value.to_string(), allowed);
        }
    }

    fn text(&mut self, key: &str, value: &str, ok: impl Fn(&str) -> bool, allowed: &str) {
        if !ok(value) {
            self.push(key, format!("{value:?}"), allowed.to_owned());
        }
    }

    fn push(&mut self, key: &str, value: String, allowed: String) {
        self.0.push(ConfigError {
            key: key.to_owned(),
            env: None,
            value,
            allowed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_original_systems_and_valid() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.slots.base, 4);
        assert_eq!(c.slots.trend_strong, 6);
        assert_eq!(c.slots.chop, 3);
        assert_eq!(c.slots.hard_cap, 10);
        assert_eq!(c.slots.rotation_threshold, 0.15);
        assert_eq!(c.correlation.max, 0.80);
        assert_eq!(c.funds.max_margin_usage, 0.65);
        assert_eq!(c.funds.max_open_positions, 10);
        assert_eq!(c.funds.max_notional_per_trade_usdt, 200.0);
        assert_eq!(c.funds.max_total_notional_usdt, 2000.0);
        assert_eq!(c.cadence.symbol_cooldown_secs, 60);
        assert_eq!(
            (c.cadence.max_exec_per_hour, c.cadence.max_exec_per_5min),
            (3, 2)
        );
        assert_eq!(c.permit_ttl_secs, 60);
        assert_eq!(c.key_prefix, "quantum:");
    }

    #[test]
    fn every_contract_environment_name_takes_effect() {
        let c = Config::load(
            None,
            &env(&[
                ("GOV_ACTIVE_SLOTS_ENABLED", "false"),
                ("GOV_ACTIVE_SLOTS_BASE", "5"),
                ("GOV_ACTIVE_SLOTS_TREND_STRONG", "7"),
                ("GOV_ACTIVE_SLOTS_CHOP", "2"),
                ("GOV_ROTATION_THRESHOLD", "0.2"),
                ("GOV_MAX_CORRELATION", "0.7"),
                ("GOV_ROTATION_LOCK_TTL", "90"),
                ("GOV_MAX_MARGIN_USAGE_PCT", "0.5"),
                ("GOV_MAX_OPEN_POSITIONS", "8"),
                ("GOV_MAX_NOTIONAL_PER_TRADE_USDT", "150"),
                ("GOV_MAX_TOTAL_NOTIONAL_USDT", "1500"),
                ("GOV_SYMBOL_COOLDOWN_SECONDS", "30"),
                ("GOV_MAX_EXEC_PER_HOUR", "6"),
                ("GOV_MAX_EXEC_PER_5MIN", "4"),
                ("GOV_PERMIT_TTL", "45"),
                ("GOV_KEY_PREFIX", "quantum:{acct1}:"),
                ("GOV_BINANCE_BASE_URL", "http://127.0.0.1:9"),
                ("GOV_TESTNET_ENABLE_P29", "true"),
                ("GOV_MODE", "production"),
                ("P26_MODE", "enforce"),
                ("GOV_ADMIN_TOKEN", "secret-not-in-config"),
            ]),
        )
        .unwrap();
        assert!(!c.slots.enabled);
        assert_eq!(
            (c.slots.base, c.slots.trend_strong, c.slots.chop),
            (5, 7, 2)
        );
        assert_eq!(c.slots.rotation_threshold, 0.2);
        assert_eq!(c.correlation.max, 0.7);
        assert_eq!(c.slots.rotation_lock_ttl_secs, 90);
        assert_eq!(c.funds.max_margin_usage, 0.5);
        assert_eq!(c.funds.max_open_positions, 8);
        assert_eq!(c.funds.max_notional_per_trade_usdt, 150.0);
        assert_eq!(c.funds.max_total_notional_usdt, 1500.0);
        assert_eq!(c.cadence.symbol_cooldown_secs, 30);
        assert_eq!(
            (c.cadence.max_exec_per_hour, c.cadence.max_exec_per_5min),
            (6, 4)
        );
        assert_eq!(c.permit_ttl_secs, 45);
        assert_eq!(c.key_prefix, "quantum:{acct1}:");
        assert_eq!(c.binance.base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert!(c.binance.testnet_enable_p29);
        assert_eq!(c.mode, Mode::Production);
        assert_eq!(c.heat.mode, HeatMode::Enforce);
        assert!(!c.to_toml().contains("secret-not-in-config"));
    }

    #[test]
    fn a_value_where_the_environment_needs_a_section_is_an_error_not_a_panic() {
        let errors = Config::load(
            Some("slots = 1\n"),
            &env(&[
                ("GOV_ACTIVE_SLOTS_BASE", "5"),
                ("GOV_MAX_CLOCK_OFFSET_MS", "+5"),
            ]),
        )
        .unwrap_err();
        let base = errors
            .iter()
            .find(|e| e.key == "slots.base")
            .unwrap_or_else(|| panic!("{errors:?}"));
        assert_eq!(base.env.as_deref(), Some("GOV_ACTIVE_SLOTS_BASE"));
        assert!(base.allowed.contains("[slots] section"), "{base:?}");
        assert!(
            errors.iter().any(|e| e.key == "slots"),
            "the file's `slots = 1` too"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.env.as_deref() == Some("GOV_MAX_CLOCK_OFFSET_MS")),
            "environment integers follow the number grammar: {errors:?}"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::load(
            Some("[funds]\nmax_open_positions = 7\n"),
            &env(&[("GOV_MAX_OPEN_POSITIONS", "9")]),
        )
        .unwrap();
        assert_eq!(c.funds.max_open_positions, 9);
    }

    #[test]
    fn every_invalid_key_is_reported_with_value_and_range() {
        let errors = Config::load(
            Some(
                "mode = \"paper\"\nbogus = 1\n[funds]\nmax_margin_usage = 65.0\nmax_open_positons = 3\n\
                 [slots]\nbase = 0\n[correlation]\nmax = \"high\"\n",
            ),
            &env(&[("GOV_MAX_EXEC_PER_HOUR", "three"), ("GOV_MAX_OPEN_POSITION", "3")]),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        for expected in [
            "mode",
            "bogus",
            "funds.max_open_positons",
            "correlation.max",
            "cadence.max_exec_per_hour",
            "<environment>",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
        let env_err = errors
            .iter()
            .find(|e| e.key == "cadence.max_exec_per_hour")
            .unwrap();
        assert_eq!(env_err.env.as_deref(), Some("GOV_MAX_EXEC_PER_HOUR"));
        assert_eq!(env_err.value, "three");
        let typo = errors.iter().find(|e| e.key == "<environment>").unwrap();
        assert_eq!(typo.env.as_deref(), Some("GOV_MAX_OPEN_POSITION"));
    }

    #[test]
    fn out_of_range_values_are_all_reported_after_types_pass() {
        let errors = Config::load(
            Some("[funds]\nmax_margin_usage = 65.0\n[slots]\nbase = 0\n[kill_score]\nopen_threshold = 0.9\n"),
            &[],
        )
        .unwrap_err();
        let rendered: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("funds.max_margin_usage = 65: a number above 0")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with("slots.base = 0: an integer from 1")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|e| e.contains("below kill_score.critical")),
            "{rendered:?}"
        );
    }

    #[test]
    fn a_non_finite_environment_number_is_rejected() {
        let errors = Config::load(None, &env(&[("GOV_MAX_CORRELATION", "NaN")])).unwrap_err();
        assert_eq!(errors[0].key, "correlation.max");
        assert_eq!(errors[0].value, "NaN");
    }

    #[test]
    fn the_printed_config_loads_back_identically() {
        let c = Config::default();
        assert_eq!(Config::load(Some(&c.to_toml()), &[]).unwrap(), c);
    }
}

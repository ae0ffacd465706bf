//! The environment names the deployment already uses, the key each one sets, and how its
//! text becomes a value (docs/wire-contract.md lists them).

/// How an environment variable's text becomes a TOML value.
#[derive(Copy, Clone)]
pub(super) enum EnvKind {
    Bool,
    Int,
    Float,
    Text,
}

use super::sections::GatesConfig;

/// The environment names of docs/wire-contract.md that set a setting, and the key each one
/// sets (the gate modes' names follow from `[gates]`: [`gate_mode_names`]).
pub(super) const ENV_KEYS: &[(&str, &str, EnvKind)] = &[
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
    ("GOV_PERMIT_REPLICAS", "permit_replicas", EnvKind::Int),
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
    ("GOV_MAX_LEVERAGE", "leverage.max", EnvKind::Int),
    ("GOV_MARGIN_MODE", "liquidation.margin_mode", EnvKind::Text),
    (
        "GOV_LIQUIDATION_MIN_DISTANCE_PCT",
        "liquidation.min_distance_pct",
        EnvKind::Float,
    ),
    (
        "GOV_LIQUIDATION_MIN_DISTANCE_SIGMAS",
        "liquidation.min_distance_sigmas",
        EnvKind::Float,
    ),
    (
        "GOV_MAX_ACCOUNT_MARGIN_RATIO",
        "liquidation.max_account_margin_ratio",
        EnvKind::Float,
    ),
    ("GOV_DERISK_AT", "liquidation.derisk_at", EnvKind::Float),
    (
        "GOV_DERISK_RESUME_PCT",
        "liquidation.derisk_resume_below",
        EnvKind::Float,
    ),
    (
        "GOV_DERISK_RESUME_AFTER_SECS",
        "liquidation.derisk_resume_after_secs",
        EnvKind::Int,
    ),
];

/// `GOV_` names that are read elsewhere (secrets stay out of the config, so it can be printed).
pub(super) const ENV_SECRETS: &[&str] = &["GOV_ADMIN_TOKEN"];

/// The environment name of every gate mode an operator may change, `GOV_GATE_<GATE>_MODE`,
/// with its key: every field of `[gates]` but the integrity gates, which are `enforce` only.
/// Derived from [`GatesConfig`], so a new gate's mode has its name without a row anywhere.
fn gate_mode_names() -> impl Iterator<Item = (String, String)> {
    let gates = toml::Table::try_from(GatesConfig::default()).expect("[gates] serializes");
    let integrity = GatesConfig::default().integrity();
    gates
        .into_iter()
        .map(|(field, _)| (format!("GOV_GATE_{}_MODE", field.to_uppercase()), field))
        .map(|(name, field)| (name, format!("gates.{field}")))
        .filter(move |(_, key)| integrity.iter().all(|(k, _)| k != key))
}

/// Every environment name with the key it sets and its kind: the settings above, then the
/// gate modes.
pub(super) fn env_table() -> Vec<(String, String, EnvKind)> {
    let settings = ENV_KEYS
        .iter()
        .map(|(e, k, kind)| ((*e).to_owned(), (*k).to_owned(), *kind));
    let modes = gate_mode_names().map(|(e, k)| (e, k, EnvKind::Text));
    settings.chain(modes).collect()
}

/// Every environment name that sets a config key, with its key (for docs and tests).
pub fn env_names() -> Vec<(String, String)> {
    env_table().into_iter().map(|(e, k, _)| (e, k)).collect()
}

/// Parses an environment value of `kind`; the error says what is allowed.
pub(super) fn env_value(kind: EnvKind, raw: &str) -> Result<toml::Value, String> {
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

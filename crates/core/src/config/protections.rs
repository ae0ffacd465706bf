//! Settings of the protections (drawdown halt, loss streaks, price collar, per-side slots,
//! submit throttle) and the per-gate mode that lets any policy gate run in shadow or off.

use serde::{Deserialize, Serialize};

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
            side_slots: e,
            submit_throttle: e,
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

/// Per-side slots (`[side_slots]`): optional maxima within the desired slots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SideSlotsConfig {
    /// At most this many long slots (none: no side limit).
    pub max_long: Option<u32>,
    /// At most this many short slots (none: no side limit).
    pub max_short: Option<u32>,
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

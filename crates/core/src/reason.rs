//! Block reasons with their stable codes (docs/wire-contract.md). The code is what the deployment greps,
//! what the decision stream carries and what metrics are labelled with: never rename one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a plan was not allowed. One variant per stable code of docs/wire-contract.md, then the codes of
/// the protections added since (drawdown halt, loss streaks, price collar, per-side slots,
/// submit throttle).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // each variant is documented by its code in docs/wire-contract.md
pub enum BlockReason {
    KillSwitch,
    TradingStateReducing,
    ActiveSlotsNoPolicy,
    ActiveSlotsNotInUniverse,
    StateDriftPositionCount,
    StateDriftExposure,
    KillScoreCritical,
    SymbolCooldown,
    RateLimitHour,
    #[serde(rename = "rate_limit_5min")]
    RateLimit5min,
    SlotsFull,
    ActiveSlotsWaitingRotationClose,
    ActiveSlotsRotationTimeout,
    CorrelationCap,
    MarginCap,
    MaxPositions,
    NotionalPerTradeExceeded,
    TotalNotionalExceeded,
    CapitalAllocationExceeded,
    ExitLockBusyDoubleClosePrevention,
    NoPosition,
    MarketDataUnavailable,
    ExchangeStateUnavailable,
    OppositePositionOpen,
    DrawdownHalt,
    SymbolLossStreak,
    LossStreakGlobal,
    PriceOutOfBand,
    SideSlotsFull,
    SubmitThrottle,
    ExchangeClockOffset,
    StateRecordCorrupt,
    LeverageAboveCap,
    LeverageAboveBracket,
    LiquidationTooClose,
    AccountMarginRatio,
}

impl BlockReason {
    /// Every reason, in the order of docs/wire-contract.md (for metrics and reports that list them all).
    pub const ALL: [BlockReason; 36] = [
        BlockReason::KillSwitch,
        BlockReason::TradingStateReducing,
        BlockReason::ActiveSlotsNoPolicy,
        BlockReason::ActiveSlotsNotInUniverse,
        BlockReason::StateDriftPositionCount,
        BlockReason::StateDriftExposure,
        BlockReason::KillScoreCritical,
        BlockReason::SymbolCooldown,
        BlockReason::RateLimitHour,
        BlockReason::RateLimit5min,
        BlockReason::SlotsFull,
        BlockReason::ActiveSlotsWaitingRotationClose,
        BlockReason::ActiveSlotsRotationTimeout,
        BlockReason::CorrelationCap,
        BlockReason::MarginCap,
        BlockReason::MaxPositions,
        BlockReason::NotionalPerTradeExceeded,
        BlockReason::TotalNotionalExceeded,
        BlockReason::CapitalAllocationExceeded,
        BlockReason::ExitLockBusyDoubleClosePrevention,
        BlockReason::NoPosition,
        BlockReason::MarketDataUnavailable,
        BlockReason::ExchangeStateUnavailable,
        BlockReason::OppositePositionOpen,
        BlockReason::DrawdownHalt,
        BlockReason::SymbolLossStreak,
        BlockReason::LossStreakGlobal,
        BlockReason::PriceOutOfBand,
        BlockReason::SideSlotsFull,
        BlockReason::SubmitThrottle,
        BlockReason::ExchangeClockOffset,
        BlockReason::StateRecordCorrupt,
        BlockReason::LeverageAboveCap,
        BlockReason::LeverageAboveBracket,
        BlockReason::LiquidationTooClose,
        BlockReason::AccountMarginRatio,
    ];

    /// The stable wire code.
    pub fn code(self) -> &'static str {
        match self {
            BlockReason::KillSwitch => "kill_switch",
            BlockReason::TradingStateReducing => "trading_state_reducing",
            BlockReason::ActiveSlotsNoPolicy => "active_slots_no_policy",
            BlockReason::ActiveSlotsNotInUniverse => "active_slots_not_in_universe",
            BlockReason::StateDriftPositionCount => "state_drift_position_count",
            BlockReason::StateDriftExposure => "state_drift_exposure",
            BlockReason::KillScoreCritical => "kill_score_critical",
            BlockReason::SymbolCooldown => "symbol_cooldown",
            BlockReason::RateLimitHour => "rate_limit_hour",
            BlockReason::RateLimit5min => "rate_limit_5min",
            BlockReason::SlotsFull => "slots_full",
            BlockReason::ActiveSlotsWaitingRotationClose => "active_slots_waiting_rotation_close",
            BlockReason::ActiveSlotsRotationTimeout => "active_slots_rotation_timeout",
            BlockReason::CorrelationCap => "correlation_cap",
            BlockReason::MarginCap => "margin_cap",
            BlockReason::MaxPositions => "max_positions",
            BlockReason::NotionalPerTradeExceeded => "notional_per_trade_exceeded",
            BlockReason::TotalNotionalExceeded => "total_notional_exceeded",
            BlockReason::CapitalAllocationExceeded => "capital_allocation_exceeded",
            BlockReason::ExitLockBusyDoubleClosePrevention => {
                "exit_lock_busy_double_close_prevention"
            }
            BlockReason::NoPosition => "no_position",
            BlockReason::MarketDataUnavailable => "market_data_unavailable",
            BlockReason::ExchangeStateUnavailable => "exchange_state_unavailable",
            BlockReason::OppositePositionOpen => "opposite_position_open",
            BlockReason::DrawdownHalt => "drawdown_halt",
            BlockReason::SymbolLossStreak => "symbol_loss_streak",
            BlockReason::LossStreakGlobal => "loss_streak_global",
            BlockReason::PriceOutOfBand => "price_out_of_band",
            BlockReason::SideSlotsFull => "side_slots_full",
            BlockReason::SubmitThrottle => "submit_throttle",
            BlockReason::ExchangeClockOffset => "exchange_clock_offset",
            BlockReason::StateRecordCorrupt => "state_record_corrupt",
            BlockReason::LeverageAboveCap => "leverage_above_cap",
            BlockReason::LeverageAboveBracket => "leverage_above_bracket",
            BlockReason::LiquidationTooClose => "liquidation_too_close",
            BlockReason::AccountMarginRatio => "account_margin_ratio",
        }
    }
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_equals_stable_code_for_every_reason() {
        for reason in BlockReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.code()));
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = BlockReason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), BlockReason::ALL.len());
    }
}

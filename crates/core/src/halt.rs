//! The governor's own halts — the drawdown halt and the de-risk halt: the effects that switch
//! trading to REDUCING with the halt's record and event, the effects that resume it, and the
//! unit of change the account monitors ask the store for. No plan causes them: their events
//! carry the plan id `governor` and the symbol `ACCOUNT`.

use crate::book::Halt;
use crate::effects::{Effect, Event, Guard};
use crate::reason::BlockReason;
use crate::time::Timestamp;
use crate::types::{PlanId, Symbol, TradingState};

/// One atomic change an account monitor asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Checked before the effects.
    pub guards: Vec<Guard>,
    /// The changes.
    pub effects: Vec<Effect>,
}

/// The plan id and symbol of a monitor's events.
pub fn monitor_ids() -> (PlanId, Symbol) {
    (
        PlanId::parse("governor").expect("a valid id"),
        Symbol::parse("ACCOUNT").expect("a valid symbol"),
    )
}

/// The effects that put trading into REDUCING for `reason`, with the halt record (so opens
/// are refused with that reason) and the `TRADING_STATE_CHANGED` event.
pub fn halt_effects(
    reason: BlockReason,
    plan_id: &PlanId,
    symbol: &Symbol,
    detail: &str,
    now: Timestamp,
) -> Vec<Effect> {
    vec![
        Effect::SetTradingState {
            to: TradingState::Reducing,
            reason: format!("{}: {detail}", reason.code()),
        },
        Effect::SetHalt(Some(Halt {
            reason,
            since: now,
            detail: detail.to_owned(),
        })),
        Effect::Emit(
            Event::new("TRADING_STATE_CHANGED", plan_id, symbol, now)
                .with("from", TradingState::Active.as_str())
                .with("to", TradingState::Reducing.as_str())
                .with("reason", reason.code())
                .with("detail", detail.to_owned())
                .with("by", "governor"),
        ),
    ]
}

/// A monitor's own halt ends: back to ACTIVE, the halt record gone, the event with
/// `reason` (`drawdown_resume`, `account_margin_resume`) and why.
pub fn resume(reason: &'static str, why: String, now: Timestamp) -> Observation {
    let (who, account) = monitor_ids();
    Observation {
        guards: vec![Guard::TradingStateIs(TradingState::Reducing)],
        effects: vec![
            Effect::SetTradingState {
                to: TradingState::Active,
                reason: why.clone(),
            },
            Effect::SetHalt(None),
            Effect::Emit(
                Event::new("TRADING_STATE_CHANGED", &who, &account, now)
                    .with("from", TradingState::Reducing.as_str())
                    .with("to", TradingState::Active.as_str())
                    .with("reason", reason)
                    .with("detail", why)
                    .with("by", "governor"),
            ),
        ],
    }
}

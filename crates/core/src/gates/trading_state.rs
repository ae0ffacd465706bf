//! The kill switch: HALTED stops everything, REDUCING lets only closes pass.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};
use crate::types::TradingState;

/// Blocks what the trading state forbids for this plan's path.
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let state = ctx.snap.trading_state;
    let is_close = ctx.plan.action.is_close();
    let line = TraceLine::new("trading_state", Outcome::Pass)
        .name("state", state.as_str())
        .flag("is_close", is_close);
    match (state, is_close) {
        (TradingState::Halted, _) => Err(refuse(
            trace,
            line,
            Refusal::new(BlockReason::KillSwitch, "trading is HALTED: nothing passes"),
        )),
        (TradingState::Reducing, false) => Err(match &ctx.snap.book.halt {
            // The governor halted itself (drawdown): say why, with its numbers.
            Some(halt) => refuse(
                trace,
                line.name("halted_by", halt.reason.code()),
                Refusal::new(
                    halt.reason,
                    format!(
                        "trading is REDUCING since {} ms: {}",
                        halt.since.millis(),
                        halt.detail
                    ),
                ),
            ),
            None => refuse(
                trace,
                line,
                Refusal::new(
                    BlockReason::TradingStateReducing,
                    "trading is REDUCING: only closes pass",
                ),
            ),
        }),
        _ => {
            trace.push(line);
            Ok(())
        }
    }
}

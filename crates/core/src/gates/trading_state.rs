//! The kill switch: HALTED stops everything, REDUCING lets only closes pass.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};
use crate::types::TradingState;

/// Blocks what the trading state forbids for this plan's path.
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let state = ctx.snap.trading_state;
    let is_close = ctx.plan.action.is_close();
    trace
        .line("trading_state", Outcome::Pass)
        .name("state", state.as_str())
        .flag("is_close", is_close);
    match (state, is_close) {
        (TradingState::Halted, _) => Err(refuse(
            trace,
            Refusal::new(BlockReason::KillSwitch, "trading is HALTED: nothing passes"),
        )),
        (TradingState::Reducing, false) => Err(match &ctx.snap.book.halt {
            // The governor halted itself (drawdown): say why, with its numbers.
            Some(halt) => {
                trace.last().name("halted_by", halt.reason.code());
                refuse(
                    trace,
                    Refusal::new(
                        halt.reason,
                        format!(
                            "trading is REDUCING since {} ms: {}",
                            halt.since.millis(),
                            halt.detail
                        ),
                    ),
                )
            }
            None => refuse(
                trace,
                Refusal::new(
                    BlockReason::TradingStateReducing,
                    "trading is REDUCING: only closes pass",
                ),
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Book, Halt};
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{plan, run, NOW};
    use crate::time::Timestamp;

    #[test]
    fn each_state_lets_through_what_it_promises() {
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        let close = plan("BTCUSDT", "FULL_CLOSE_PROPOSED", &[]);
        let cases = [
            (TradingState::Active, &open, Ok(())),
            (TradingState::Active, &close, Ok(())),
            (
                TradingState::Reducing,
                &open,
                Err(BlockReason::TradingStateReducing),
            ),
            (TradingState::Reducing, &close, Ok(())),
            (TradingState::Halted, &open, Err(BlockReason::KillSwitch)),
            (TradingState::Halted, &close, Err(BlockReason::KillSwitch)),
        ];
        for (state, p, expected) in cases {
            let mut snap = test_snapshot(Book::default(), None);
            snap.trading_state = state;
            let got = run(p, &snap, &Config::default(), NOW, check);
            assert_eq!(got, expected, "{state:?} {}", p.action.as_str());
        }
    }

    #[test]
    fn a_governor_halt_refuses_with_its_own_reason() {
        let book = Book {
            halt: Some(Halt {
                reason: BlockReason::DrawdownHalt,
                since: Timestamp(1),
                detail: "equity 900 is 10% below its peak".into(),
            }),
            ..Book::default()
        };
        let mut snap = test_snapshot(book, None);
        snap.trading_state = TradingState::Reducing;
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        assert_eq!(
            run(&open, &snap, &Config::default(), NOW, check),
            Err(BlockReason::DrawdownHalt)
        );
    }
}

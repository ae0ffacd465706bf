//! Exchange clock: opens are refused (`exchange_clock_offset`) while the exchange's clock is
//! further than `binance.max_clock_offset_ms` from ours, or has not been measured recently.
//! A signed request's timestamp is checked against the exchange's clock, and the account view
//! is only as fresh as the clocks agree. Closes are never refused here. An integrity gate:
//! always enforced.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::snapshot::ExchangeClock;
use crate::trace::{Outcome, Trace};

/// The gate (opens only). The exchange snapshot was required before it.
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let max = ctx.cfg.binance.max_clock_offset_ms;
    let clock = ctx.snap.exchange.as_ref().map(|x| x.clock);
    trace
        .line("exchange_clock", Outcome::Pass)
        .int("max_offset_ms", max as i64);
    match clock {
        Some(ExchangeClock::Local) | None => {
            trace
                .last()
                .note("the exchange runs on this machine's clock");
            Ok(())
        }
        Some(ExchangeClock::OffsetMs(offset)) if offset.unsigned_abs() <= max => {
            trace.last().int("offset_ms", offset);
            Ok(())
        }
        Some(ExchangeClock::OffsetMs(offset)) => {
            trace.last().int("offset_ms", offset);
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ExchangeClockOffset,
                    format!("the exchange's clock is {offset} ms from ours (at most ±{max} ms)"),
                ),
            ))
        }
        Some(ExchangeClock::Unmeasured) => {
            trace.last().flag("measured", false);
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ExchangeClockOffset,
                    "the offset to the exchange's clock has not been measured recently",
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ExchangeState;

    fn decide_clock(clock: Option<ExchangeClock>) -> Result<(), BlockReason> {
        let snap = crate::gates::common::test_snapshot(
            Default::default(),
            clock.map(|clock| ExchangeState {
                equity_usdt: 1_000.0,
                positions: Default::default(),
                clock,
            }),
        );
        crate::gates::common::check_open("BTCUSDT", &snap, check)
    }

    #[test]
    fn the_offset_is_checked_at_the_500_ms_default_on_both_sides() {
        let block = Err(BlockReason::ExchangeClockOffset);
        // (offset, expected) computed by hand against ±500 ms.
        let cases = [
            (0, Ok(())),
            (400, Ok(())),
            (500, Ok(())),
            (-500, Ok(())),
            (501, block),
            (-501, block),
            (600, block),
            (i64::MIN, block),
        ];
        for (offset, expected) in cases {
            assert_eq!(
                decide_clock(Some(ExchangeClock::OffsetMs(offset))),
                expected,
                "offset {offset} ms"
            );
        }
    }

    #[test]
    fn an_unmeasured_clock_refuses_and_a_local_one_passes() {
        assert_eq!(
            decide_clock(Some(ExchangeClock::Unmeasured)),
            Err(BlockReason::ExchangeClockOffset)
        );
        assert_eq!(decide_clock(Some(ExchangeClock::Local)), Ok(()));
    }
}

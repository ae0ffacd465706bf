//! Leverage cap: an open whose leverage is above `leverage.max` is refused
//! (`leverage_above_cap`). Funds caps bound the notional and the margin; this bounds how close
//! to liquidation any one position may start, whatever its size. Closes are never refused here.

use super::common::{refuse, Candidate, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// The gate (opens only, after sizing has fixed the leverage).
pub fn check(ctx: &Ctx<'_>, cand: &Candidate, trace: &mut Trace) -> Result<(), Refusal> {
    let max = ctx.cfg.leverage.max;
    trace
        .line("leverage_cap", Outcome::Pass)
        .int("leverage", i64::from(cand.leverage))
        .int("max_leverage", i64::from(max));
    if cand.leverage > max {
        let why = format!(
            "{} at {}x: at most {max}x on this account",
            cand.symbol, cand.leverage
        );
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::LeverageAboveCap, why),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{candidate, plan, run, NOW};
    use crate::types::Side;

    #[test]
    fn leverage_up_to_the_20x_default_passes() {
        let snap = test_snapshot(Default::default(), None);
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        let cases = [
            (1, Ok(())),
            (20, Ok(())),
            (21, Err(BlockReason::LeverageAboveCap)),
            (125, Err(BlockReason::LeverageAboveCap)),
        ];
        for (leverage, expected) in cases {
            let cand = candidate("BTCUSDT", Side::Long, 100.0, leverage);
            let got = run(&open, &snap, &Config::default(), NOW, |ctx, t| {
                check(ctx, &cand, t)
            });
            assert_eq!(got, expected, "{leverage}x");
        }
    }
}

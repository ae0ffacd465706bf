//! Intent-time drift: an intent formed on a different account than the one
//! that exists now is refused; an old intent is flagged.

use super::common::{refuse, Ctx, Refusal};
use super::portfolio::Portfolio;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// Compares the plan's snapshot fields with the account now.
pub fn check(ctx: &Ctx<'_>, portfolio: &Portfolio, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.drift;
    let plan = ctx.plan;
    if plan.intent_created_at.is_none()
        && plan.snapshot_position_count.is_none()
        && plan.snapshot_exposure_pct.is_none()
    {
        trace
            .line("intent_drift", Outcome::NotApplicable)
            .note("the plan carries no intent snapshot");
        return Ok(());
    }
    let now_count = portfolio.position_count() as i64;
    let now_exposure = portfolio.exposure();
    let age = plan
        .intent_created_at
        .map(|t| ctx.now.millis() as f64 / 1000.0 - t);
    trace
        .line("intent_drift", Outcome::Pass)
        .opt_num("intent_age_secs", age)
        .int("max_intent_age_secs", cfg.max_intent_age_secs as i64)
        .int("positions_now", now_count)
        .opt_int(
            "positions_at_intent",
            plan.snapshot_position_count.map(i64::from),
        )
        .int(
            "max_position_count_drift",
            i64::from(cfg.max_position_count_drift),
        )
        .num("exposure_now", now_exposure)
        .opt_num("exposure_at_intent", plan.snapshot_exposure_pct)
        .num("max_exposure_drift", cfg.max_exposure_drift);
    if let Some(then) = plan.snapshot_position_count {
        let drift = (now_count - i64::from(then)).abs();
        if drift > i64::from(cfg.max_position_count_drift) {
            return Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::StateDriftPositionCount,
                    format!(
                        "{then} positions at intent, {now_count} now: drift {drift} > {}",
                        cfg.max_position_count_drift
                    ),
                ),
            ));
        }
    }
    if let Some(then) = plan.snapshot_exposure_pct {
        let drift = (now_exposure - then).abs();
        if !(drift <= cfg.max_exposure_drift) {
            return Err(refuse(trace, Refusal::new(
                    BlockReason::StateDriftExposure,
                    format!(
                        "exposure {then:.4} at intent, {now_exposure:.4} now: drift {drift:.4} > {}",
                        cfg.max_exposure_drift
                    ),
                ),
            ));
        }
    }
    if age.is_some_and(|a| a > cfg.max_intent_age_secs as f64) {
        trace.last().outcome(Outcome::Warn).note(format!(
            "intent is older than {} s",
            cfg.max_intent_age_secs
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, plan, position, sym, traced, NOW};
    use crate::types::Side;

    /// Three ledger positions of 1 at 100 (no market: valued at entry) on 1,000 USDT equity:
    /// 3 positions, exposure 0.30.
    fn drift_of(extra: &[(&str, &str)]) -> (Result<(), BlockReason>, Outcome) {
        let mut book = Book::default();
        for s in ["AUSDT", "BUSDT", "CUSDT"] {
            book.positions
                .insert(sym(s), position(Side::Long, 1.0, 100.0));
        }
        let snap = test_snapshot(book, Some(account(1_000.0)));
        let open = plan("ZUSDT", "OPEN_LONG", extra);
        let (got, line) = traced(&open, &snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            check(ctx, &portfolio, t)
        });
        (got, line.outcome)
    }

    #[test]
    fn position_count_may_drift_by_two() {
        let cases = [
            ("1", Ok(())),
            ("5", Ok(())),
            ("0", Err(BlockReason::StateDriftPositionCount)),
            ("6", Err(BlockReason::StateDriftPositionCount)),
        ];
        for (then, expected) in cases {
            let (got, _) = drift_of(&[("snapshot_position_count", then)]);
            assert_eq!(got, expected, "{then} positions at intent, 3 now");
        }
    }

    #[test]
    fn exposure_may_drift_by_fifteen_points() {
        let cases = [
            ("0.15", Ok(())),
            ("0.44", Ok(())),
            ("0.14", Err(BlockReason::StateDriftExposure)),
            ("0.46", Err(BlockReason::StateDriftExposure)),
        ];
        for (then, expected) in cases {
            let (got, _) = drift_of(&[("snapshot_exposure_pct", then)]);
            assert_eq!(got, expected, "exposure {then} at intent, 0.30 now");
        }
    }

    #[test]
    fn an_old_intent_is_flagged_not_refused_and_no_intent_is_not_applicable() {
        let now_secs = NOW.millis() / 1000;
        let at = |age: i64| (now_secs - age).to_string();
        assert_eq!(
            drift_of(&[("intent_created_at", &at(30))]),
            (Ok(()), Outcome::Pass)
        );
        assert_eq!(
            drift_of(&[("intent_created_at", &at(31))]),
            (Ok(()), Outcome::Warn)
        );
        assert_eq!(drift_of(&[]), (Ok(()), Outcome::NotApplicable));
    }
}

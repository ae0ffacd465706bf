//! Intent-time drift: an intent formed on a different account than the one
//! that exists now is refused; an old intent is flagged.

use super::common::{refuse, Ctx, Refusal};
use super::portfolio::Portfolio;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};

/// Compares the plan's snapshot fields with the account now.
pub fn check(ctx: &Ctx<'_>, portfolio: &Portfolio, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.drift;
    let plan = ctx.plan;
    if plan.intent_created_at.is_none()
        && plan.snapshot_position_count.is_none()
        && plan.snapshot_exposure_pct.is_none()
    {
        trace.push(
            TraceLine::new("intent_drift", Outcome::NotApplicable)
                .note("the plan carries no intent snapshot"),
        );
        return Ok(());
    }
    let now_count = portfolio.position_count() as i64;
    let now_exposure = portfolio.exposure();
    let age = plan
        .intent_created_at
        .map(|t| ctx.now.millis() as f64 / 1000.0 - t);
    let mut line = TraceLine::new("intent_drift", Outcome::Pass)
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
                line,
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
            return Err(refuse(
                trace,
                line,
                Refusal::new(
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
        line.outcome = Outcome::Warn;
        line.note = Some(format!("intent is older than {} s", cfg.max_intent_age_secs).into());
    }
    trace.push(line);
    Ok(())
}

//! The kill score: critical blocks the open (and may disarm the account);
//! between the open threshold and critical the quantity shrinks linearly.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// What the kill score does to an open that passes.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct KillScoreOutcome {
    /// The factor applied to the plan's quantity (1.0 when unchanged).
    pub qty_scale: f64,
}

/// The quantity factor for a kill score: 1 up to `open_threshold`, falling linearly to
/// `min_qty_scale` at `critical`.
pub fn qty_scale(kill_score: f64, open_threshold: f64, critical: f64, min_qty_scale: f64) -> f64 {
    if kill_score <= open_threshold {
        return 1.0;
    }
    let t = ((kill_score - open_threshold) / (critical - open_threshold)).clamp(0.0, 1.0);
    1.0 - t * (1.0 - min_qty_scale)
}

/// Blocks a critical kill score; otherwise returns the quantity scale.
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<KillScoreOutcome, Refusal> {
    let cfg = &ctx.cfg.kill_score;
    trace
        .line("kill_score", Outcome::Pass)
        .opt_num("kill_score", ctx.plan.kill_score)
        .num("open_threshold", cfg.open_threshold)
        .num("critical", cfg.critical)
        .num("min_qty_scale", cfg.min_qty_scale);
    let Some(k) = ctx.plan.kill_score else {
        trace.last().note("no kill score: quantity unchanged");
        return Ok(KillScoreOutcome { qty_scale: 1.0 });
    };
    if k >= cfg.critical {
        trace.last().flag("auto_disarm", cfg.auto_disarm);
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::KillScoreCritical,
                format!("kill score {k} >= critical {}", cfg.critical),
            ),
        ));
    }
    let scale = qty_scale(k, cfg.open_threshold, cfg.critical, cfg.min_qty_scale);
    let outcome = if scale < 1.0 {
        Outcome::Adjust
    } else {
        Outcome::Pass
    };
    trace.last().outcome(outcome).num("qty_scale", scale);
    Ok(KillScoreOutcome { qty_scale: scale })
}

#[cfg(test)]
mod tests {
    use super::qty_scale;

    #[test]
    fn scale_is_linear_between_threshold_and_critical() {
        assert_eq!(qty_scale(0.60, 0.65, 0.80, 0.25), 1.0);
        assert_eq!(qty_scale(0.65, 0.65, 0.80, 0.25), 1.0);
        // 0.72: (0.72 - 0.65) / 0.15 = 0.4667 of the way; 1 - 0.4667 × 0.75 = 0.65.
        assert!((qty_scale(0.72, 0.65, 0.80, 0.25) - 0.65).abs() < 1e-9);
        assert!((qty_scale(0.80, 0.65, 0.80, 0.25) - 0.25).abs() < 1e-12);
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{plan, traced, NOW};

    #[test]
    fn critical_blocks_and_above_the_threshold_shrinks() {
        let snap = test_snapshot(Default::default(), None);
        let open = |extra: &[(&str, &str)]| plan("BTCUSDT", "OPEN_LONG", extra);
        let gate = |p| traced(&p, &snap, &Config::default(), NOW, check);
        let (got, _) = gate(open(&[("kill_score", "0.8")]));
        assert_eq!(got, Err(BlockReason::KillScoreCritical));
        let (got, line) = gate(open(&[("kill_score", "0.65")]));
        assert_eq!(
            (got, line.outcome),
            (Ok(KillScoreOutcome { qty_scale: 1.0 }), Outcome::Pass)
        );
        let (got, line) = gate(open(&[("kill_score", "0.7")]));
        assert_eq!(line.outcome, Outcome::Adjust);
        // (0.7 − 0.65) / 0.15 = 1/3 of the way: 1 − 0.75 / 3 = 0.75.
        assert!((got.expect("passes").qty_scale - 0.75).abs() < 1e-12);
        let (got, _) = gate(open(&[]));
        assert_eq!(got, Ok(KillScoreOutcome { qty_scale: 1.0 }));
    }
}

//! Cooldown and execution rate: sliding windows over permitted opens.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};

/// No second open on the same symbol within the cooldown.
pub fn cooldown(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let secs = ctx.cfg.cadence.symbol_cooldown_secs;
    let symbol = &ctx.plan.symbol;
    let last = ctx.snap.book.last_open_at.get(symbol).copied();
    let since_last = last.map(|t| ctx.now.secs_since(t));
    let line = TraceLine::new("symbol_cooldown", Outcome::Pass)
        .opt_num("secs_since_last_open", since_last)
        .int("cooldown_secs", secs as i64);
    match since_last {
        Some(s) if s < secs as f64 => Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::SymbolCooldown,
                format!("{symbol} was opened {s:.0} s ago; cooldown {secs} s"),
            ),
        )),
        _ => {
            trace.push(line);
            Ok(())
        }
    }
}

/// At most N opens in the last hour and M in the last five minutes (sliding windows).
pub fn execution_rate(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.cadence;
    let book = &ctx.snap.book;
    let hour = book.opens_after(ctx.now.minus_secs(3600));
    let five = book.opens_after(ctx.now.minus_secs(300));
    let line = TraceLine::new("execution_rate", Outcome::Pass)
        .int("opens_last_hour", hour as i64)
        .int("max_per_hour", i64::from(cfg.max_exec_per_hour))
        .int("opens_last_5min", five as i64)
        .int("max_per_5min", i64::from(cfg.max_exec_per_5min));
    if hour >= cfg.max_exec_per_hour as usize {
        return Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::RateLimitHour,
                format!(
                    "{hour} opens in the last hour; at most {}",
                    cfg.max_exec_per_hour
                ),
            ),
        ));
    }
    if five >= cfg.max_exec_per_5min as usize {
        return Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::RateLimit5min,
                format!(
                    "{five} opens in the last 5 minutes; at most {}",
                    cfg.max_exec_per_5min
                ),
            ),
        ));
    }
    trace.push(line);
    Ok(())
}

//! Cooldown and execution rate: sliding windows over permitted opens.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// No second open on the same symbol within the cooldown.
pub fn cooldown(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let secs = ctx.cfg.cadence.symbol_cooldown_secs;
    let symbol = &ctx.plan.symbol;
    let last = ctx.snap.book.last_open_at.get(symbol).copied();
    let since_last = last.map(|t| ctx.now.secs_since(t));
    trace
        .line("symbol_cooldown", Outcome::Pass)
        .opt_num("secs_since_last_open", since_last)
        .int("cooldown_secs", secs as i64);
    match since_last {
        Some(s) if s < secs as f64 => Err(refuse(
            trace,
            Refusal::new(
                BlockReason::SymbolCooldown,
                format!("{symbol} was opened {s:.0} s ago; cooldown {secs} s"),
            ),
        )),
        _ => Ok(()),
    }
}

/// At most N opens in the last hour and M in the last five minutes (sliding windows).
pub fn execution_rate(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.cadence;
    let book = &ctx.snap.book;
    let hour = book.opens_after(ctx.now.minus_secs(3600));
    let five = book.opens_after(ctx.now.minus_secs(300));
    trace
        .line("execution_rate", Outcome::Pass)
        .int("opens_last_hour", hour as i64)
        .int("max_per_hour", i64::from(cfg.max_exec_per_hour))
        .int("opens_last_5min", five as i64)
        .int("max_per_5min", i64::from(cfg.max_exec_per_5min));
    if hour >= cfg.max_exec_per_hour as usize {
        return Err(refuse(
            trace,
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
            Refusal::new(
                BlockReason::RateLimit5min,
                format!(
                    "{five} opens in the last 5 minutes; at most {}",
                    cfg.max_exec_per_5min
                ),
            ),
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
    use crate::gates::common::testing::{plan, run, sym, NOW};

    fn with_opens(opens_secs_ago: &[u64], last_open_secs_ago: Option<u64>) -> Book {
        let mut book = Book {
            open_times: opens_secs_ago.iter().map(|s| NOW.minus_secs(*s)).collect(),
            ..Book::default()
        };
        if let Some(s) = last_open_secs_ago {
            book.last_open_at.insert(sym("BTCUSDT"), NOW.minus_secs(s));
        }
        book
    }

    #[test]
    fn the_cooldown_ends_at_exactly_60_seconds() {
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        // (seconds since the last open on BTCUSDT, expected) against the 60 s default.
        let cases = [
            (Some(0), Err(BlockReason::SymbolCooldown)),
            (Some(59), Err(BlockReason::SymbolCooldown)),
            (Some(60), Ok(())),
            (Some(61), Ok(())),
            (None, Ok(())),
        ];
        for (ago, expected) in cases {
            let snap = test_snapshot(with_opens(&[], ago), None);
            let got = run(&open, &snap, &Config::default(), NOW, cooldown);
            assert_eq!(got, expected, "last open {ago:?} s ago");
        }
        // Another symbol's cooldown is not this one's.
        let snap = test_snapshot(with_opens(&[], Some(1)), None);
        let eth = plan("ETHUSDT", "OPEN_LONG", &[]);
        assert_eq!(run(&eth, &snap, &Config::default(), NOW, cooldown), Ok(()));
    }

    #[test]
    fn execution_rate_counts_strictly_inside_each_window() {
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        // Defaults: 3 per hour, 2 per 5 minutes; an open exactly at the window's start is out.
        let cases: [(&[u64], Result<(), BlockReason>); 6] = [
            (&[], Ok(())),
            (&[10], Ok(())),
            (&[10, 299], Err(BlockReason::RateLimit5min)),
            (&[10, 300], Ok(())),
            (&[10, 400, 3599], Err(BlockReason::RateLimitHour)),
            (&[10, 400, 3600], Ok(())),
        ];
        for (ago, expected) in cases {
            let snap = test_snapshot(with_opens(ago, None), None);
            let got = run(&open, &snap, &Config::default(), NOW, execution_rate);
            assert_eq!(got, expected, "opens {ago:?} s ago");
        }
    }
}

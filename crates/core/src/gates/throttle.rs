//! Submit throttle: at most `throttle.max_permits_per_sec` open permits in any second across
//! the account (`submit_throttle`) — a burst guard, distinct from the hourly and 5-minute
//! execution limits. Closes are never throttled: reducing risk is never harder than opening it.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace};

/// The start of the one-second window ending at `now` (exclusive).
pub fn window_start(now: Timestamp) -> Timestamp {
    Timestamp(now.millis() - 1000)
}

/// The gate (opens only).
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let limit = ctx.cfg.throttle.max_permits_per_sec;
    let recent = ctx.snap.book.opens_after(window_start(ctx.now));
    trace
        .line("submit_throttle", Outcome::Pass)
        .int("permits_last_second", recent as i64)
        .int("max_permits_per_sec", i64::from(limit));
    if recent >= limit as usize {
        let why = format!("{recent} open permits in the last second; at most {limit}");
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::SubmitThrottle, why),
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
    use crate::gates::common::testing::{plan, run, NOW};

    #[test]
    fn the_tenth_permit_of_a_second_is_the_last() {
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        // (permits in the window, how many milliseconds ago each was, expected) against 10/s.
        let cases = [
            (9, 999, Ok(())),
            (10, 999, Err(BlockReason::SubmitThrottle)),
            (10, 1000, Ok(())),
            (11, 0, Err(BlockReason::SubmitThrottle)),
        ];
        for (n, ms_ago, expected) in cases {
            let book = Book {
                open_times: vec![Timestamp(NOW.millis() - ms_ago); n],
                ..Book::default()
            };
            let snap = test_snapshot(book, None);
            let got = run(&open, &snap, &Config::default(), NOW, check);
            assert_eq!(got, expected, "{n} permits {ms_ago} ms ago");
        }
    }
}

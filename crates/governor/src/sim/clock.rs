//! A clock for one simulation thread: it reads the time the simulation set, and moves only when
//! the simulation advances it. Workers take their clock as a `fn() -> Timestamp`; [`now`] is one.

use governor_core::time::Timestamp;
use std::cell::Cell;

thread_local! {
    static NOW_MS: Cell<i64> = const { Cell::new(0) };
}

/// The simulated time on this thread.
pub fn now() -> Timestamp {
    Timestamp(NOW_MS.with(Cell::get))
}

/// Sets the simulated time on this thread (a clock jump when it goes back).
pub fn set(at: Timestamp) {
    NOW_MS.with(|c| c.set(at.millis()));
}

/// Moves the simulated time on this thread forward by `ms`.
pub fn advance(ms: i64) {
    NOW_MS.with(|c| c.set(c.get() + ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_only_when_told() {
        set(Timestamp(1_000));
        assert_eq!(now(), Timestamp(1_000));
        advance(250);
        assert_eq!(now(), Timestamp(1_250));
        set(Timestamp(900));
        assert_eq!(now(), Timestamp(900), "a jump back is taken as it is");
    }
}

//! The wall clock: the `now` of the service. The core never reads a clock; every service
//! passes this one (tests and the replay pass their own).

use governor_core::time::Timestamp;

/// The wall clock, in ms since the epoch: the service's `now` (0 if the system clock is before 1970).
pub fn wall_clock() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp(ms)
}

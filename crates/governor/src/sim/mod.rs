//! Simulated parts for running the service's own loops deterministically: a clock that moves
//! only when told to, and a stream with consumer groups in memory. They implement the traits the
//! real parts implement ([`GroupStream`](crate::streams::group::GroupStream), the clock's
//! `fn() -> Timestamp`), so the code under test is the production code; what the simulator adds
//! is control over time and over the failures at each boundary.

pub mod clock;
pub mod exchange;
pub mod invariants;
pub mod outage;
pub mod rng;
pub mod run;
pub mod stream;
pub mod world;

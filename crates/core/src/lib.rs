//! The pure decision core of quantum-governor.
//!
//! Everything here is a function of its arguments: no I/O, no clock, no randomness. Time is
//! always an argument (`now`), so replay, tests and production run the same code and the same
//! inputs give the same decision and a byte-identical trace. The dependency graph keeps it so:
//! this crate cannot reach tokio, redis or a clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// `!(value <= cap)` is deliberate throughout: it is true for NaN, so a number that slipped
// through as NaN blocks instead of passing. Clippy's preferred rewrite loses that.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod book;
pub mod commit;
pub mod config;
pub mod decide;
pub mod derisk;
pub mod effects;
pub mod expiry;
pub mod fields;
pub mod gates;
pub mod halt;
pub mod harvest_action;
pub mod heat;
pub mod liquidation;
pub mod market;
pub mod plan;
pub mod reason;
pub mod results;
pub mod snapshot;
pub mod symbol_walk;
pub mod time;
pub mod trace;
pub mod types;

pub use config::Config;
pub use decide::{decide, Decision, Verdict};
pub use plan::Plan;
pub use reason::BlockReason;
pub use snapshot::Snapshot;
pub use time::Timestamp;

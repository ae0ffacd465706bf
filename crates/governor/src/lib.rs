//! quantum-governor: the service around the pure core — the embedded state store that applies
//! decisions atomically, the governor loop (parse → snapshot → decide → commit, retried on a
//! lost race), the paper exchange, the replay and its report, and the CLI commands.

// `!(needed <= available)` is deliberate: true for NaN, so a NaN refuses instead of passing.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
#![warn(missing_docs)]

pub mod calibrate;
pub mod civil;
pub mod clock;
pub mod evaluate;
pub mod exchange;
pub mod executor;
pub mod explain;
pub mod fuzz_targets;
pub mod governor;
pub mod heat;
pub mod inputs;
pub mod journal;
pub mod json_fields;
pub mod logfmt;
pub mod market_data;
pub mod metrics;
pub mod orders;
pub mod plans_export;
pub mod replay;
pub mod server;
pub mod service;
pub mod sim;
pub mod state_file;
pub mod store;
pub mod streams;
pub mod supervisor;

pub use governor::{Governor, Submission};
pub use inputs::MarketInputs;
pub use store::memory::MemoryStore;

//! The main job: recorded market → sample signals → plans → governor → permit-checked executor
//! on the paper exchange → results → the governor's result side, hour by hour, on the embedded
//! store; and the same signals once more **ungoverned** (only the exchange's margin limit), so
//! the report shows what the governor changes.

pub mod accounts;
pub mod config_diff;
pub mod drawdown;
pub mod engine;
pub mod frontier;
pub mod heat;
pub mod heat_comparison;
pub mod outcome;
pub mod recorded;
pub mod report;
pub mod signals;
pub mod summary;
pub mod sweep;
pub mod tape;
pub mod twin;

pub use engine::{run, ReplayOptions, ReplayResult};
pub use heat::HeatReplay;
pub use heat_comparison::{run_with_comparison, HeatComparison};
pub use signals::SignalConfig;

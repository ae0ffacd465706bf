//! The governor's typed configuration: a TOML file where every key is optional, overridden by
//! the environment names the deployment already uses (docs/wire-contract.md), validated all at
//! once. Every unknown key, mistyped value and out-of-range value is reported in one go,
//! naming the key (and the environment variable it came from) with the value and the range.
//!
//! The rooms: `sections.rs` (what each setting means, its default and its range), `env.rs`
//! (the environment table), `load.rs` (file + environment → a validated config) and
//! `validate.rs` (the error type and the collector). Arrows point one way: load → sections,
//! env → …, sections → validate.

mod env;
mod load;
mod sections;
mod validate;

pub use env::env_names;
pub use sections::*;
pub use validate::ConfigError;

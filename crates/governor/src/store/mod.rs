//! State stores: where decisions are committed atomically under their guards.
//!
//! `memory` is the embedded store, the default runtime (the replay and `serve` without Redis
//! use it); the Redis store will implement the same commit model with one Lua script per kind.

pub mod memory;

//! The Binance USDT-M futures adapter: a REST client written for this project (signing, clock
//! offset, request weight, typed errors, strict response reading, exact quantities) and its
//! implementation of the [`Exchange`](super::Exchange) port.
//!
//! Binance's official `binance-sdk` crate (feature `derivatives_trading_usds_futures`) was
//! evaluated first: it is async on reqwest (about 470 crates to build), its response models
//! make every field optional (a missing field would pass silently, where this adapter must
//! name it), and it retries requests on its own schedule (an order must never be re-sent
//! blindly). The few endpoints the governor needs are written here instead, blocking, on ureq.

pub mod client;
pub mod error;
pub mod filters;
pub mod market;
pub mod setup;
pub mod sign;
pub mod venue;
pub mod wire;

pub use client::{
    check_base_url, BinanceClient, Credentials, PRODUCTION_URL, SPOT_URL, TESTNET_URL,
};
pub use error::BinanceError;
pub use filters::SymbolFilters;
pub use venue::BinanceVenue;

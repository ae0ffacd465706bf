//! The entry points of the fuzz targets (`fuzz/`), one per edge where outside input arrives,
//! so that `cargo fuzz` and the corpus replay of `cargo test` (`tests/fuzz_corpus.rs`) run the
//! same code. Each takes arbitrary bytes and must return without panicking; errors are the
//! expected outcome for most inputs.

use crate::exchange::binance::wire;
use crate::json_fields::{object_fields, Scalars};
use crate::streams::consumer::Entry;
use governor_core::book::Book;
use governor_core::heat::HarvestProposal;
use governor_core::results::{settle, ExecutionResult, SettlePolicy};
use governor_core::time::Timestamp;
use governor_core::{Config, Plan};

/// Stream fields from bytes: one field a line, its name before the first `=` (bytes kept as
/// they are, so that fields that are not UTF-8 reach the same checks as on the stream).
fn stream_fields(data: &[u8]) -> Entry {
    let pairs: Vec<(&[u8], &[u8])> = data
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| match line.iter().position(|b| *b == b'=') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &b""[..]),
        })
        .collect();
    Entry::from_raw("0-1".to_owned(), &pairs)
}

/// A plan stream entry: decoded, parsed, and when it parses, decided on an empty book.
pub fn plan_entry(data: &[u8]) {
    let entry = stream_fields(data);
    if let Ok(plan) = entry.checked().and_then(Plan::parse) {
        let snapshot = crate::store::memory::MemoryStore::new(3600).snapshot(
            &plan.plan_id,
            &crate::inputs::MarketInputs::default(),
            Timestamp(1_700_000_000_000),
        );
        let _ = governor_core::decide::decide(
            &plan,
            &snapshot,
            &Config::default(),
            Timestamp(1_700_000_000_000),
        );
    }
}

/// An `apply.result` entry: decoded, parsed, and when it parses, settled on an empty book.
pub fn result_entry(data: &[u8]) {
    let entry = stream_fields(data);
    if let Ok(result) = entry.checked().and_then(ExecutionResult::parse) {
        let policy = SettlePolicy::of(&Config::default());
        let _ = settle(&result, &Book::default(), false, &policy, Timestamp(0));
    }
}

/// A `harvest.proposal` entry.
pub fn proposal_entry(data: &[u8]) {
    let entry = stream_fields(data);
    let _ = entry.checked().and_then(HarvestProposal::parse);
}

/// The config loader: TOML text before the first NUL byte, `NAME=VALUE` environment lines
/// after it.
pub fn config(data: &[u8]) {
    let (toml, env) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(toml) = std::str::from_utf8(toml) else {
        return;
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = Config::load(Some(toml), &env);
}

/// Binance's answers: the bytes as a JSON document, read by every decoder.
pub fn binance_answer(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let btc = governor_core::types::Symbol::parse("BTCUSDT").expect("valid");
    let _ = wire::server_time(&v);
    let _ = wire::symbol_filters(&v, &btc);
    let _ = wire::klines(&v);
    let _ = wire::account(&v);
    let _ = wire::positions(&v);
    let _ = wire::order(&v);
    let _ = wire::trade_costs(&v);
    let _ = wire::withdrawals_enabled(&v);
}

/// The body of `POST /v1/plans`: read with duplicates kept, then parsed as a plan.
pub fn http_plan_body(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(fields) = object_fields(text, Scalars::TextNumbersBooleans) {
        let _ = Plan::parse(&fields);
    }
}

//! Every input of the committed fuzz corpus (`fuzz/corpus/<target>/`) replayed through its
//! target's entry point: what the fuzzer once found must never panic again, and CI checks it on
//! every run without a fuzzer.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
        n += 1;
    }
    assert!(
        n >= 3,
        "{target}: only {n} corpus inputs in {}",
        dir.display()
    );
}

#[test]
fn the_plan_entry_corpus_replays() {
    replay("plan_entry", quantum_governor::fuzz_targets::plan_entry);
}

#[test]
fn the_result_entry_corpus_replays() {
    replay("result_entry", quantum_governor::fuzz_targets::result_entry);
}

#[test]
fn the_proposal_entry_corpus_replays() {
    replay(
        "proposal_entry",
        quantum_governor::fuzz_targets::proposal_entry,
    );
}

#[test]
fn the_config_corpus_replays() {
    replay("config", quantum_governor::fuzz_targets::config);
}

#[test]
fn the_binance_answer_corpus_replays() {
    replay(
        "binance_answer",
        quantum_governor::fuzz_targets::binance_answer,
    );
}

#[test]
fn the_http_plan_body_corpus_replays() {
    replay(
        "http_plan_body",
        quantum_governor::fuzz_targets::http_plan_body,
    );
}

//! docs/wire-contract.md is the contract as this program implements it: every block reason
//! code, every environment name and every log token the code can emit must be written there,
//! so that the document cannot silently fall behind the code.

use governor_core::reason::BlockReason;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn contract() -> String {
    std::fs::read_to_string(repo().join("docs/wire-contract.md")).unwrap()
}

/// Every `logfmt::line("TOKEN"`, `logfmt::format("TOKEN"` and quoted upper-case token that
/// stands alone as a decision-line or executor token in the sources.
fn log_tokens() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("crates/governor/src"), &mut files);
    let mut tokens = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for marker in ["logfmt::line(", "logfmt::format(", "crate::logfmt::line("] {
            for (at, _) in text.match_indices(marker) {
                let rest = text[at + marker.len()..].trim_start();
                if let Some(quoted) = rest.strip_prefix('"') {
                    let token: String = quoted
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_' || *c == '-')
                        .collect();
                    if !token.is_empty() {
                        tokens.push(token);
                    }
                }
            }
        }
    }
    // Tokens chosen in a match before the line is written.
    tokens.extend(
        [
            "ACTIVE_SLOTS_ALLOW",
            "BLOCKED_SLOTS_FULL",
            "BLOCKED_NO_POLICY",
            "CORR_BLOCK",
            "BLOCKED_MARGIN",
            "ROTATION_CLOSE",
            "BLOCKED",
            "ALLOWED_CLOSE",
            "EXECUTED",
            "EXECUTION_FAILED",
        ]
        .map(str::to_owned),
    );
    tokens.sort();
    tokens.dedup();
    tokens
}

#[test]
fn every_reason_code_is_in_the_contract() {
    let doc = contract();
    let missing: Vec<&str> = BlockReason::ALL
        .iter()
        .map(|r| r.code())
        .filter(|c| !doc.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/wire-contract.md: {missing:?}"
    );
}

#[test]
fn every_environment_name_is_in_the_contract() {
    let doc = contract();
    let missing: Vec<String> = governor_core::config::env_names()
        .into_iter()
        .map(|(env, _)| env)
        .filter(|e| !doc.contains(&format!("`{e}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/wire-contract.md: {missing:?}"
    );
}

#[test]
fn every_log_token_is_in_the_contract() {
    let doc = contract();
    let tokens = log_tokens();
    assert!(
        tokens.len() > 30,
        "the scan found too few tokens: {tokens:?}"
    );
    let missing: Vec<&String> = tokens
        .iter()
        .filter(|t| !doc.contains(&format!("`{t}")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/wire-contract.md: {missing:?}"
    );
}

#[test]
fn every_documented_reason_code_exists() {
    let doc = contract();
    let section = doc
        .split("## Block reasons")
        .nth(1)
        .and_then(|s| s.split("\n\n").nth(1))
        .unwrap();
    let codes: Vec<&str> = section
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, c)| c)
        .collect();
    for c in codes {
        assert!(
            BlockReason::ALL.iter().any(|r| r.code() == c),
            "docs/wire-contract.md lists `{c}`, which the code does not have"
        );
    }
}

//! The replay's drawdown section: the same signals with the drawdown halt in shadow and
//! enforced, checked against the journals of independent runs.

use governor_core::config::GateMode;
use governor_core::Config;
use quantum_governor::civil::parse_utc;
use quantum_governor::replay::outcome::AccountOutcome;
use quantum_governor::replay::{self, HeatReplay, ReplayOptions};
use std::path::{Path, PathBuf};

fn opts(out: &Path) -> ReplayOptions {
    ReplayOptions {
        data_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines"),
        out_dir: out.to_path_buf(),
        from: Some(parse_utc("2025-05-22").unwrap()),
        to: Some(parse_utc("2025-06-12").unwrap()),
        heat: HeatReplay::Off,
        ..ReplayOptions::default()
    }
}

/// The governed account never falls 10 % on the bundled data; half a percent makes it halt.
fn config(mode: GateMode) -> Config {
    let toml = format!(
        "[drawdown]\nlimit = 0.005\nresume_below = 0.0025\n[gates]\ndrawdown_halt = \"{}\"",
        mode.as_str()
    );
    Config::load(Some(&toml), &[]).unwrap()
}

fn shadow_records(journal: &Path, code: &str) -> usize {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|d| d["shadow"].as_array().unwrap().iter().any(|r| r == code))
        .count()
}

#[test]
fn shadow_and_enforced_drawdown_halts_are_compared_on_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let enforced = replay::run(&config(GateMode::Enforce), &opts(dir.path())).unwrap();
    let o = opts(dir.path());
    let d = replay::drawdown::compare(
        &o.load_recording().unwrap(),
        &config(GateMode::Enforce),
        &o,
        &enforced,
    )
    .unwrap();
    assert!(d.enforce.halts > 0, "{d:?}");
    assert_eq!(d.enforce.opens_stopped, enforced.blocks["drawdown_halt"]);
    assert_eq!(
        d.enforce.account,
        AccountOutcome::of(&enforced.bars, enforced.initial_equity)
    );

    // The shadow column is a real run in shadow: its count is the journal's.
    let sdir = tempfile::tempdir().unwrap();
    let shadow = replay::run(&config(GateMode::Shadow), &opts(sdir.path())).unwrap();
    let would = shadow_records(&shadow.journal, "drawdown_halt");
    assert!(would > 0);
    assert_eq!(d.shadow.opens_stopped, would);
    assert_eq!(d.shadow.halts, 0, "shadow never halts");
    assert_eq!(
        d.shadow.account,
        AccountOutcome::of(&shadow.bars, shadow.initial_equity)
    );

    // Shadow changes nothing but the record: the account is the one without the gate.
    let odir = tempfile::tempdir().unwrap();
    let off = replay::run(&config(GateMode::Off), &opts(odir.path())).unwrap();
    assert_eq!(off.bars, shadow.bars);
    assert_ne!(off.bars, enforced.bars, "enforcing changed the run");

    let s = replay::summary::summarize(&enforced);
    let html = replay::report::render(
        &enforced,
        &s,
        &replay::report::Comparisons {
            heat: None,
            drawdown: Some(d.clone()),
            candidate: None,
        },
    );
    assert!(html.contains("Drawdown halt: shadow vs enforce"));
    assert!(html.contains(&format!(
        "<tr><td>opens stopped (shadow: would have been)</td><td>{}</td><td>{}</td></tr>",
        d.shadow.opens_stopped, d.enforce.opens_stopped
    )));
    assert!(html.contains(&format!(
        "<tr><td>halts (switched to REDUCING)</td><td>0</td><td>{}</td></tr>",
        d.enforce.halts
    )));
}

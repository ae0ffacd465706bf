//! The replay's shadow-compare section, checked against the calibrations it records and
//! against independent runs with the heat gate off and enforced.

use governor_core::Config;
use quantum_governor::civil::parse_utc;
use quantum_governor::replay::{self, HeatReplay, ReplayOptions, ReplayResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn opts(out: &Path, heat: HeatReplay) -> ReplayOptions {
    ReplayOptions {
        data_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines"),
        out_dir: out.to_path_buf(),
        from: Some(parse_utc("2025-05-22").unwrap()),
        to: Some(parse_utc("2025-06-12").unwrap()),
        heat,
        ..ReplayOptions::default()
    }
}

/// With the governor's notional caps the sample book stays cold (heat < 0.12 on the bundled
/// data), so the edges are lowered to make the ladder act.
fn config() -> Config {
    Config::load(Some("[heat]\nwarm_at = 0.03\nhot_at = 0.06"), &[]).unwrap()
}

/// the default ladder, written out here independently of the program's tables.
fn designs_ladder(bucket: &str, proposal: &str) -> String {
    match (bucket, proposal) {
        ("WARM", "FULL_CLOSE_PROPOSED") => "PARTIAL_75",
        ("HOT", "FULL_CLOSE_PROPOSED") | ("HOT", "PARTIAL_75") => "PARTIAL_50",
        ("HOT", "PARTIAL_50") | ("HOT", "PARTIAL_25") => "PARTIAL_25",
        (_, other) => other,
    }
    .to_owned()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn max_drawdown(r: &ReplayResult) -> f64 {
    let mut peak = r.initial_equity;
    let mut worst: f64 = 0.0;
    for b in &r.bars {
        peak = peak.max(b.governed.equity);
        worst = worst.max((peak - b.governed.equity) / peak);
    }
    worst
}

#[test]
fn the_shadow_compare_section_holds_the_numbers_of_the_calibrations_and_of_real_runs() {
    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let (shadow, h) = {
        let o = opts(dir.path(), HeatReplay::Shadow);
        replay::run_with_comparison(&o.load_recording().unwrap(), &cfg, &o).unwrap()
    };
    let h = h.expect("a comparison unless --heat off");

    // Every recorded calibration: bucket from its heat, action from DESIGN's ladder.
    let rows = lines(&dir.path().join("calibrations.jsonl"));
    assert_eq!(rows.len(), h.proposals);
    let mut by_bucket: BTreeMap<String, usize> = BTreeMap::new();
    let mut changes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        let bucket = r["bucket"].as_str().unwrap();
        match r["heat"].as_f64() {
            Some(heat) => {
                let expected = if heat >= 0.06 {
                    "HOT"
                } else if heat >= 0.03 {
                    "WARM"
                } else {
                    "COLD"
                };
                assert_eq!(bucket, expected, "{r}");
            }
            None => assert_eq!(bucket, "UNAVAILABLE"),
        }
        let (proposal, calibrated) = (
            r["proposal"].as_str().unwrap(),
            r["calibrated"].as_str().unwrap(),
        );
        let want = if bucket == "UNAVAILABLE" {
            proposal.to_owned()
        } else {
            designs_ladder(bucket, proposal)
        };
        assert_eq!(calibrated, want, "{r}");
        *by_bucket.entry(bucket.to_owned()).or_default() += 1;
        if calibrated != proposal {
            *changes
                .entry(format!("{proposal} → {calibrated} ({bucket})"))
                .or_default() += 1;
        }
    }
    assert_eq!(h.by_bucket, by_bucket);
    assert_eq!(h.downgrades, changes);
    assert!(
        by_bucket.get("WARM").copied().unwrap_or(0) > 0
            && by_bucket.get("HOT").copied().unwrap_or(0) > 0,
        "{by_bucket:?}"
    );
    assert!(!changes.is_empty());

    // Shadow changes nothing: the governed account is the one of a run with the gate off.
    let off_dir = tempfile::tempdir().unwrap();
    let off = replay::run(&cfg, &opts(off_dir.path(), HeatReplay::Off)).unwrap();
    assert!(off.calibrations.is_empty());
    assert_eq!(
        off.bars, shadow.bars,
        "shadow mode must not change a single bar"
    );
    assert_eq!(h.off.final_equity, off.bars.last().unwrap().governed.equity);
    assert!((h.off.max_drawdown - max_drawdown(&off)).abs() < 1e-12);

    // The enforce column is a real run with the calibrated actions submitted.
    let enf_dir = tempfile::tempdir().unwrap();
    let enforce = replay::run(&cfg, &opts(enf_dir.path(), HeatReplay::Enforce)).unwrap();
    assert_eq!(
        h.enforce.final_equity,
        enforce.bars.last().unwrap().governed.equity
    );
    assert!((h.enforce.max_drawdown - max_drawdown(&enforce)).abs() < 1e-12);
    assert_ne!(
        h.enforce.final_equity, h.off.final_equity,
        "downgrades changed the account"
    );
    // …and the governor saw the calibrated actions, not harvest's.
    let decided: BTreeMap<String, String> = lines(&enforce.journal)
        .iter()
        .map(|d| {
            (
                d["plan_id"].as_str().unwrap().to_owned(),
                d["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for c in enforce.calibrations.iter().filter(|c| c.downgraded) {
        assert_eq!(decided[&c.plan_id], c.calibrated, "{c:?}");
    }

    // The report shows the section with these numbers.
    let s = replay::summary::summarize(&shadow);
    let html = replay::report::render(
        &shadow,
        &s,
        &replay::report::Comparisons {
            heat: Some(h.clone()),
            drawdown: None,
            candidate: None,
        },
    );
    assert!(html.contains("Portfolio heat gate: shadow compare"));
    for (change, n) in &h.downgrades {
        assert!(
            html.contains(&format!("<td>{change}</td><td>{n}</td>")),
            "{change}"
        );
    }
    assert!(html.contains(&format!("{:.2}", h.enforce.final_equity)));
    assert!(html.contains(&format!("{:.2}%", h.off.max_drawdown * 100.0)));
}

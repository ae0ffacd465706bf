//! `replay --sweep` on three weeks of the bundled data: the same `sweep.csv` and journals on one
//! thread and on two, and the run with the default values is the plain replay; and the issue's
//! grid, `correlation.max` × `slots.base` (4 × 3 runs) over the 14 months of
//! `data/klines_long`, rendered in headless Chromium.

mod support;

use governor_core::Config;
use quantum_governor::civil::parse_utc;
use quantum_governor::replay::sweep::{sweep, Axis, Swept};
use quantum_governor::replay::{self, ReplayOptions};
use std::path::{Path, PathBuf};

fn slice(out: &Path) -> ReplayOptions {
    ReplayOptions {
        data_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines"),
        out_dir: out.to_path_buf(),
        from: Some(parse_utc("2025-05-22").unwrap()),
        to: Some(parse_utc("2025-06-12").unwrap()),
        ..ReplayOptions::default()
    }
}

fn axes() -> Vec<Axis> {
    vec![
        Axis::parse("correlation.max=0.6,0.8").unwrap(),
        Axis::parse("cadence.max_exec_per_hour=2,3").unwrap(),
    ]
}

/// The grid of [`axes`] around the default config on two threads, run in `dir`.
fn default_sweep(dir: &Path) -> Swept {
    sweep(&Config::default(), &axes(), &slice(dir), 2, &|_, _| {}).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn one_thread_or_two_write_the_same_results_and_journals() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = Config::default();
    let a = sweep(&cfg, &axes(), &slice(one.path()), 1, &|_, _| {})
        .unwrap()
        .rows;
    let b = sweep(&cfg, &axes(), &slice(two.path()), 2, &|_, _| {})
        .unwrap()
        .rows;
    assert_eq!(a, b);
    assert_eq!(
        read(&one.path().join("sweep.csv")),
        read(&two.path().join("sweep.csv"))
    );
    for i in 0..4 {
        let journal = |d: &Path| read(&d.join(format!("runs/{i:03}/decisions.jsonl")));
        assert_eq!(journal(one.path()), journal(two.path()), "run {i}");
    }
    // The values change what happens: the runs are not all the same.
    assert!(
        a.iter().any(|r| r.final_equity != a[0].final_equity),
        "{a:?}"
    );
}

#[test]
fn the_run_with_the_default_values_is_the_plain_replay() {
    let dir = tempfile::tempdir().unwrap();
    let swept = default_sweep(dir.path());
    let rows = &swept.rows;
    // The first axis varies slowest: (0.6, 2), (0.6, 3), (0.8, 2), (0.8, 3).
    let i = rows
        .iter()
        .position(|r| r.values == ["0.8", "3"])
        .expect("the defaults are in the grid");
    assert_eq!((i, swept.current), (3, Some(3)));
    let default = &rows[i];
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = replay::run(&Config::default(), &slice(plain_dir.path())).unwrap();
    let s = replay::summary::summarize(&plain);
    assert_eq!(default.final_equity, s.governed.final_equity);
    assert_eq!(default.max_drawdown, s.governed.max_drawdown);
    assert_eq!(default.blocks, s.blocks);
    assert!(
        read(&dir.path().join("runs/003/decisions.jsonl"))
            == read(&plain_dir.path().join("decisions.jsonl")),
        "run 003's journal is the plain replay's"
    );
    let csv = read(&dir.path().join("sweep.csv"));
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("correlation.max,cadence.max_exec_per_hour,final_equity,return,"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 5, "a header and four runs");
}

#[test]
fn the_frontier_renders_in_chromium_with_the_current_config_marked_and_sorts() {
    let dir = tempfile::tempdir().unwrap();
    let axes = vec![
        Axis::parse("correlation.max=0.6,0.7,0.8,0.9").unwrap(),
        Axis::parse("slots.base=2,3,4").unwrap(),
    ];
    let opts = ReplayOptions {
        data_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines_long"),
        out_dir: dir.path().to_path_buf(),
        write_journal: false,
        ..ReplayOptions::default()
    };
    let swept = sweep(&Config::default(), &axes, &opts, 2, &|_, _| {}).unwrap();
    assert_eq!(swept.rows.len(), 12);
    let report = quantum_governor::replay::frontier::write(dir.path(), &axes, &swept).unwrap();
    let rows = &swept.rows;
    let driver = support::browser::Driver::start();
    let session = support::browser::Session::new(&driver);
    session.go(&format!("file://{}", report.display()));
    let points = session.wait_for(
        "return document.querySelectorAll('svg[aria-label=frontier] circle.run').length",
        |v| v.as_u64().is_some_and(|n| n > 0),
    );
    assert_eq!(points.as_u64().unwrap() as usize, rows.len());
    let front = session.eval("return document.querySelectorAll('circle.pareto').length");
    let expected = quantum_governor::replay::frontier::pareto(rows).len();
    assert_eq!(front.as_u64().unwrap() as usize, expected);
    assert_eq!(
        session.eval("return document.querySelector('tr.current td').textContent"),
        "008",
        "the defaults (0.8, 4) are run 008"
    );
    assert_eq!(
        session.eval("return !!document.getElementById('current')"),
        true
    );
    // Sort by return, then the other way: the column is in order each time.
    let column = "return [...document.querySelectorAll('#runs tbody tr')]\
                  .map(tr => parseFloat(tr.children[3].textContent))";
    for ascending in [true, false] {
        session.eval("document.querySelectorAll('#runs th')[3].click(); return null");
        let v: Vec<f64> = serde_json::from_value(session.eval(column)).unwrap();
        let sorted = v.windows(2).all(|w| {
            if ascending {
                w[0] <= w[1]
            } else {
                w[0] >= w[1]
            }
        });
        assert!(
            sorted && v.len() == rows.len(),
            "ascending {ascending}: {v:?}"
        );
    }
    let png = session.screenshot();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep-frontier.png");
    std::fs::write(&out, png).unwrap();
    println!("screenshot: {}", out.display());
}

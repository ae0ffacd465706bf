//! The main job end to end on a slice of the bundled real data.

use governor_core::time::Timestamp;
use governor_core::Config;
use quantum_governor::civil::parse_utc;
use quantum_governor::replay::{self, ReplayOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/klines")
}

fn slice(out: &std::path::Path) -> ReplayOptions {
    ReplayOptions {
        data_dir: data(),
        out_dir: out.to_path_buf(),
        from: Some(parse_utc("2025-05-22").unwrap()),
        to: Some(parse_utc("2025-06-12").unwrap()),
        ..ReplayOptions::default()
    }
}

fn journal_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn governed_pipeline_invariants_on_three_weeks_of_real_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = slice(dir.path());
    // A simulated operator halts trading for two days in the middle.
    let halt = (
        parse_utc("2025-06-01").unwrap(),
        parse_utc("2025-06-03").unwrap(),
    );
    opts.halts = vec![halt];
    let r = replay::run(&Config::default(), &opts).unwrap();
    assert!(r.bars.len() > 400, "{} bars", r.bars.len());
    let allows = r.verdicts.get("ALLOW").copied().unwrap_or(0);
    assert!(
        allows > 50,
        "the slice must exercise the executor: {allows} allows"
    );

    // Slots: occupancy only ever grows into a free desired slot, and never past the hard cap.
    // (When the regime shrinks the budget, positions already held are not force-closed, so a
    // later bar may show occupied > desired until they close.)
    for pair in r.bars.windows(2) {
        let (before, now) = (&pair[0], &pair[1]);
        assert!(now.occupied <= 10);
        if now.occupied > before.occupied {
            assert!(
                now.occupied <= now.desired,
                "occupancy grew to {} with {} desired at {:?}",
                now.occupied,
                now.desired,
                now.t
            );
        }
    }
    assert!(
        r.bars.iter().any(|b| b.occupied == b.desired),
        "slots must fill up at some point"
    );

    // Every plan has exactly one terminal decision (a PENDING may precede it).
    let lines = journal_lines(&r.journal);
    let mut per_plan: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &lines {
        per_plan
            .entry(l["plan_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(l["verdict"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        per_plan.len(),
        r.plans,
        "every submitted plan is in the journal once"
    );
    for (id, verdicts) in &per_plan {
        let terminal = verdicts.iter().filter(|v| *v != "PENDING").count();
        assert_eq!(terminal, 1, "{id}: {verdicts:?}");
    }

    // The ledger equals the paper exchange's positions at the end.
    assert!(r.ledger_matches_exchange);

    // No open was permitted while HALTED, and the halt did block opens.
    assert_eq!(r.opens_permitted_while_halted, 0);
    let halted_opens = lines.iter().filter(|l| {
        let ts = Timestamp(l["ts"].as_i64().unwrap());
        ts >= halt.0 && ts < halt.1 && l["action"].as_str().unwrap().starts_with("OPEN")
    });
    for l in halted_opens {
        assert_eq!(l["reason"], "kill_switch", "{l}");
    }
    assert!(r.blocks.get("kill_switch").copied().unwrap_or(0) > 0);
}

#[test]
fn two_runs_write_byte_identical_journals() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = replay::run(&Config::default(), &slice(a.path())).unwrap();
    let rb = replay::run(&Config::default(), &slice(b.path())).unwrap();
    let (ja, jb) = (
        std::fs::read(&ra.journal).unwrap(),
        std::fs::read(&rb.journal).unwrap(),
    );
    assert!(!ja.is_empty());
    let hash = |bytes: &[u8]| {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        h.finish()
    };
    assert_eq!(hash(&ja), hash(&jb));
    assert_eq!(ja, jb);
}

#[test]
fn the_report_carries_every_chart_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let r = replay::run(&Config::default(), &slice(dir.path())).unwrap();
    let s = replay::summary::summarize(&r);
    let html = replay::report::render(&r, &s, &Default::default());
    let block = |id: &str| -> serde_json::Value {
        let start = format!("<script type=\"application/json\" id=\"data-{id}\">");
        let from = html.find(&start).unwrap_or_else(|| panic!("no data-{id}")) + start.len();
        let to = from + html[from..].find("</script>").unwrap();
        serde_json::from_str(&html[from..to]).unwrap()
    };
    let equity = block("equity");
    for series in [
        "t",
        "governed",
        "ungoverned",
        "governed_drawdown",
        "ungoverned_drawdown",
    ] {
        assert_eq!(
            equity[series].as_array().unwrap().len(),
            r.bars.len(),
            "{series}"
        );
    }
    let slots = block("slots");
    assert_eq!(slots["desired"].as_array().unwrap().len(), r.bars.len());
    assert!(slots["regime"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == "CHOP"));
    assert!(!block("blocks").as_object().unwrap().is_empty());
    assert!(
        !block("rotations").as_array().unwrap().is_empty(),
        "three weeks see rotations"
    );
    let heat = block("heatmap");
    let n = heat["symbols"].as_array().unwrap().len();
    assert!(n >= 2);
    assert_eq!(heat["matrix"].as_array().unwrap().len(), n);
    assert!(
        block("summary")["governed"]["final_equity"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // Self-contained: nothing is fetched.
    for needle in ["src=\"http", "href=\"http", "<link"] {
        assert!(!html.contains(needle), "{needle}");
    }
    // The regime calibration table: the calibrated thresholds give the CHOP target on the
    // replayed history, the current ones do not.
    let rows = r.regime_calibration.as_ref().expect("BTCUSDT has history");
    let chop = rows.iter().find(|row| row.regime == "CHOP").unwrap();
    assert!(
        (chop.calibrated - 0.30).abs() <= 0.02 && chop.current > 0.5,
        "{chop:?}"
    );
    assert!(html.contains("<h2>Regime calibration</h2>"));
    let liq = block("liquidation");
    for series in [
        "governed_margin_ratio",
        "ungoverned_margin_ratio",
        "governed_closest",
        "ungoverned_closest",
    ] {
        assert_eq!(
            liq[series].as_array().unwrap().len(),
            r.bars.len(),
            "{series}"
        );
    }
    // The ungoverned account holds more: its margin ratio peaks higher than the governed one.
    let peak = |k: &str| {
        liq[k]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .fold(0.0, f64::max)
    };
    assert!(peak("ungoverned_margin_ratio") > peak("governed_margin_ratio"));
    assert!(peak("governed_margin_ratio") > 0.0);
    for chart in [
        "aria-label=\"account margin ratio\"",
        "aria-label=\"closest liquidation\"",
        "aria-label=\"equity\"",
        "aria-label=\"drawdown\"",
        "aria-label=\"slots\"",
        "aria-label=\"blocks by reason\"",
        "aria-label=\"correlation heatmap\"",
    ] {
        assert!(html.contains(chart), "{chart}");
    }
}

/// The error a replay of `dir` stops with.
fn replay_error(dir: &std::path::Path) -> String {
    let opts = ReplayOptions {
        data_dir: dir.to_path_buf(),
        out_dir: dir.join("out"),
        ..ReplayOptions::default()
    };
    replay::run(&Config::default(), &opts)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_bad_row_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(data().join("BTCUSDT-1h.csv")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let ts = lines[5].split(',').next().unwrap().to_owned();
    lines[5] = format!("{ts},NaN,1,1,1,1");
    std::fs::write(dir.path().join("BTCUSDT-1h.csv"), lines.join("\n")).unwrap();
    let err = replay_error(dir.path());
    assert!(
        err.contains("BTCUSDT-1h.csv:6: open \"NaN\": must be a plain decimal number"),
        "{err}"
    );
}

#[test]
fn the_regime_reference_must_be_in_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let eth = std::fs::read_to_string(data().join("ETHUSDT-1h.csv")).unwrap();
    std::fs::write(dir.path().join("ETHUSDT-1h.csv"), eth).unwrap();
    let err = replay_error(dir.path());
    assert!(
        err.contains("regime reference BTCUSDT has no klines"),
        "{err}"
    );
}

/// The whole bundled data with the sample signals at 20x, isolated margin; the liquidation
/// gates enforced or off.
fn at_20x_isolated(out: &std::path::Path, gates_on: bool) -> replay::ReplayResult {
    use governor_core::config::{GateMode, MarginMode};
    let mut cfg = Config::default();
    cfg.liquidation.margin_mode = MarginMode::Isolated;
    if !gates_on {
        cfg.gates.liquidation_distance = GateMode::Off;
        cfg.gates.account_margin_ratio = GateMode::Off;
    }
    let mut opts = ReplayOptions {
        data_dir: data(),
        out_dir: out.to_path_buf(),
        write_journal: false,
        heat: replay::HeatReplay::Off,
        ..ReplayOptions::default()
    };
    opts.signals.leverage = 20;
    replay::run(&cfg, &opts).unwrap()
}

#[test]
fn at_20x_isolated_the_ungoverned_account_is_liquidated_and_the_governed_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let r = at_20x_isolated(dir.path(), true);
    assert!(
        !r.liquidations_ungoverned.is_empty(),
        "the same signals without a governor are liquidated"
    );
    assert!(
        r.liquidations_governed.is_empty(),
        "{:?}",
        r.liquidations_governed
    );
    assert!(r.blocks.get("liquidation_too_close").copied().unwrap_or(0) > 0);
    // Each liquidation lost the position's margin (its notional at entry / 20) and no more:
    // the loss never exceeds 5 % of the notional at the liquidation price by much.
    for l in &r.liquidations_ungoverned {
        let at_liquidation = l.qty * l.price;
        assert!(l.loss < 0.0 && -l.loss < at_liquidation * 0.06, "{l:?}");
    }
}

#[test]
fn a_governed_position_the_exchange_liquidates_leaves_the_ledger() {
    // With the liquidation gates off, 20x isolated positions are permitted and some are
    // liquidated: the ledger follows the exchange (no phantom position holds a slot).
    let dir = tempfile::tempdir().unwrap();
    let r = at_20x_isolated(dir.path(), false);
    assert!(!r.liquidations_governed.is_empty());
    assert!(r.ledger_matches_exchange);
}

/// One export line (`plans export`'s format) at `ms` with `fields`.
fn export_line(ms: i64, fields: &[(&str, serde_json::Value)]) -> String {
    let fields: Vec<serde_json::Value> = fields
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    serde_json::json!({"id": format!("{ms}-0"), "time": ms, "fields": fields}).to_string()
}

#[test]
fn recorded_plans_play_at_their_times_through_the_parser_and_the_governor() {
    let dir = tempfile::tempdir().unwrap();
    let at = |s: &str| parse_utc(s).unwrap().millis();
    let open = |id: &str, symbol: &str, qty: &str| {
        vec![
            ("plan_id", serde_json::json!(id)),
            ("symbol", serde_json::json!(symbol)),
            ("action", serde_json::json!("OPEN_LONG")),
            ("decision", serde_json::json!("EXECUTE")),
            ("qty", serde_json::json!(qty)),
        ]
    };
    let lines = [
        // Before the first replayed bar: not played, counted.
        export_line(at("2025-05-01"), &open("early", "BTCUSDT", "0.001")),
        export_line(at("2025-06-02T10:17"), &open("btc-1", "BTCUSDT", "0.001")),
        // A close the harvest planner wrote with `harvest_action` only.
        export_line(
            at("2025-06-02T12:40"),
            &[
                ("plan_id", serde_json::json!("btc-close")),
                ("symbol", serde_json::json!("BTCUSDT")),
                ("decision", serde_json::json!("EXECUTE")),
                ("harvest_action", serde_json::json!("FULL_CLOSE_PROPOSED")),
            ],
        ),
        // A value that was not UTF-8: dead-lettered, as live.
        export_line(
            at("2025-06-02T13:00"),
            &[
                ("plan_id", serde_json::json!("bytes")),
                ("qty", serde_json::json!({"hex": "ff"})),
            ],
        ),
        // The recorded governor's own rotation close: the replayed governor publishes its own.
        export_line(
            at("2025-06-02T13:05"),
            &[
                ("plan_id", serde_json::json!("rot_btc-1_BTCUSDT")),
                ("rotation_trigger", serde_json::json!("true")),
            ],
        ),
    ];
    let file = dir.path().join("plans.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let opts = ReplayOptions {
        plans: Some(std::sync::Arc::new(
            replay::recorded::RecordedPlans::load(&file).unwrap(),
        )),
        ..slice(dir.path())
    };
    let r = replay::run(&Config::default(), &opts).unwrap();
    let counts = r.recorded.clone().unwrap();
    assert_eq!(
        (
            counts.played,
            counts.governor_published,
            counts.outside_window
        ),
        (3, 1, 1)
    );
    assert_eq!(r.rejected, 1);
    let journal = journal_lines(&r.journal);
    let ids: Vec<&str> = journal
        .iter()
        .map(|d| d["plan_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["btc-1", "btc-close"], "no sample signals");
    assert_eq!(journal[0]["ts"], at("2025-06-02T10:17"), "at its own time");
    assert_eq!(journal[0]["verdict"], "ALLOW");
    assert_eq!(journal[1]["verdict"], "ALLOW", "{}", journal[1]);
    assert!(r.ledger_matches_exchange);
    // Both accounts traded the plans: the ungoverned one opened and closed BTC too.
    assert_eq!(r.ungoverned.filled, 2);
    let rejected = std::fs::read_to_string(dir.path().join("rejected.jsonl")).unwrap();
    assert!(rejected.contains("not valid UTF-8"), "{rejected}");
}

/// `(verdict reason)` by plan id, from a journal.
fn verdicts(path: &std::path::Path) -> BTreeMap<String, String> {
    journal_lines(path)
        .into_iter()
        .map(|d| {
            let v = match d["reason"].as_str() {
                Some(r) => format!("{} {r}", d["verdict"].as_str().unwrap()),
                None => d["verdict"].as_str().unwrap().to_owned(),
            };
            (d["plan_id"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

#[test]
fn a_candidate_config_lists_every_plan_it_decides_differently() {
    let dir = tempfile::tempdir().unwrap();
    let opts = slice(dir.path());
    let recording = opts.load_recording().unwrap();
    let current = Config::default();
    let candidate = current
        .with_setting("correlation.max", "0.6")
        .unwrap()
        .with_setting("slots.base", "2")
        .unwrap();
    let main = replay::engine::run_on(&recording, &current, &opts).unwrap();
    let d =
        replay::config_diff::run_candidate(&recording, &current, &candidate, &opts, &main).unwrap();
    assert_eq!(d.settings.len(), 2, "{:?}", d.settings);

    // The same diff, computed here from the two journals.
    let ours = verdicts(&dir.path().join("decisions.jsonl"));
    let theirs = verdicts(&dir.path().join("candidate/decisions.jsonl"));
    let mut expected: BTreeMap<String, (String, String)> = BTreeMap::new();
    for id in ours.keys().chain(theirs.keys()) {
        let (a, b) = (ours.get(id), theirs.get(id));
        if a != b {
            let show = |v: Option<&String>| v.cloned().unwrap_or("—".to_owned());
            expected.insert(id.clone(), (show(a), show(b)));
        }
    }
    assert!(
        !expected.is_empty(),
        "a tighter config changes some decisions"
    );
    let listed: BTreeMap<String, (String, String)> = d
        .changed
        .iter()
        .map(|c| (c.plan_id.clone(), (c.current.clone(), c.candidate.clone())))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(d.transitions.values().sum::<usize>(), expected.len());
    // A plan the correlation cap now blocks names that gate as the difference.
    let by_corr = d
        .changed
        .iter()
        .find(|c| c.current == "ALLOW" && c.candidate == "BLOCK correlation_cap")
        .expect("the lower correlation cap blocks an open the default allowed");
    assert_eq!(by_corr.gate, "correlation");

    // The report carries the section and its numbers.
    let s = replay::summary::summarize(&main);
    let html = replay::report::render(
        &main,
        &s,
        &replay::report::Comparisons {
            heat: None,
            drawdown: None,
            candidate: Some(d.clone()),
        },
    );
    assert!(html.contains("Config diff: candidate vs current"));
    assert!(html.contains("verdict changed (current → candidate)"));
    assert!(html.contains("decided under one config only"));
    assert!(html.contains(&format!("<b>{}</b>decided differently", expected.len())));
    let table = html
        .split("id=\"config-diff-plans\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the changed plans' table");
    assert_eq!(
        table.matches("<tr><td>").count(),
        expected.len(),
        "one row per changed plan"
    );
}

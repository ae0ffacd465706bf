//! The deployment's own plans, end to end: a Python redis-py client writes plans in the
//! contract's format (opens, closes carrying only `harvest_action`, one malformed) to a real
//! redis-server, where `serve` (paper exchange, its own executor) decides and executes them.
//! `plans export` writes the stream out, `replay --plans` plays it on the same recorded market
//! with the same config, and each plan's verdict and reason in the replay's journal equals the
//! one in the service's own decisions stream; the malformed plan is dead-lettered by both.
//!
//! The service's paper market maps recorded klines onto the wall clock; the test gives it a
//! copy of the bundled klines already mapped (so its shift is zero) and gives the replay the
//! same copy, so both see the same bars at the plans' times.

mod support;

use governor_core::time::Timestamp;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::paper_market::wall_clock_shift;
use quantum_governor::market_data::{closed_by, load_klines_dir};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

/// Writes each plan, then waits until the service has decided it and — for an ALLOW — until
/// the ledger shows the execution (the next plan must see it, as it would live).
const WRITE: &str = r#"
import json, sys, time, redis
r = redis.Redis.from_url(sys.argv[1], decode_responses=True)
plans = json.loads(sys.argv[2])
decisions = "quantum:stream:governor.decisions"
dead = "quantum:stream:governor.deadletter"
last_decision = "0-0"

def wait(cond, what):
    deadline = time.time() + 30
    while not cond():
        if time.time() > deadline:
            sys.exit("timed out waiting for " + what)
        time.sleep(0.02)

for p in plans:
    expect_ledger = p.pop("_ledger", None)
    r.xadd("quantum:stream:apply.plan", p)
    pid = p.get("plan_id")
    found = {}
    def decided():
        global last_decision
        for _, entries in r.xread({decisions: last_decision}, block=100) or []:
            for eid, f in entries:
                last_decision = eid
                if f.get("plan_id") == pid:
                    found.update(f)
        return bool(found)
    def dead_lettered():
        return any(f.get("plan_id") == pid for _, f in r.xrange(dead))
    wait(lambda: decided() or dead_lettered(), "the decision of " + pid)
    if found.get("verdict") == "ALLOW" and expect_ledger is not None:
        key = "quantum:position:ledger:" + p["symbol"]
        wait(lambda: r.exists(key) == expect_ledger, "the ledger of " + pid)
print("ok")
"#;

/// Copies `data/klines` into `dir`, mapped onto the wall clock as the paper market maps it.
fn wall_clock_copy(dir: &Path) -> BTreeMap<String, f64> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/klines");
    let klines = load_klines_dir(&src).unwrap();
    let now = wall_clock();
    let shift = wall_clock_shift(&klines, now);
    let mut marks = BTreeMap::new();
    for (symbol, series) in &klines {
        let mut csv = String::from("open_time_ms,open,high,low,close,volume\n");
        for k in series {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                k.open_time.millis() + shift,
                k.open,
                k.high,
                k.low,
                k.close,
                k.volume
            ));
        }
        std::fs::write(dir.join(format!("{symbol}-1h.csv")), csv).unwrap();
        let shifted_now = Timestamp(now.millis() - shift);
        let last = closed_by(series, shifted_now).last().unwrap();
        marks.insert(symbol.to_string(), last.close);
    }
    std::fs::copy(
        src.join("leverage-brackets.json"),
        dir.join("leverage-brackets.json"),
    )
    .unwrap();
    marks
}

fn hour_of(t: Timestamp) -> i64 {
    t.millis() / 3_600_000
}

/// The plans the strategy sends: `_ledger` is what the ledger must show after an ALLOW.
fn plans(marks: &BTreeMap<String, f64>) -> serde_json::Value {
    let open = |id: &str, symbol: &str, action: &str| {
        serde_json::json!({
            "plan_id": id, "symbol": symbol, "action": action, "decision": "EXECUTE",
            "qty": format!("{:.6}", 150.0 / marks[symbol]), "leverage": "5", "score": "70",
            "_ledger": 1,
        })
    };
    let harvest = |id: &str, symbol: &str| {
        serde_json::json!({
            "plan_id": id, "symbol": symbol, "decision": "EXECUTE",
            "harvest_action": "FULL_CLOSE_PROPOSED", "_ledger": 0,
        })
    };
    serde_json::json!([
        open("e2e-open-btc", "BTCUSDT", "OPEN_LONG"),
        open("e2e-open-sol", "SOLUSDT", "OPEN_SHORT"),
        open("e2e-open-xrp", "XRPUSDT", "OPEN_LONG"),
        harvest("e2e-close-btc", "BTCUSDT"),
        {"plan_id": "e2e-bad", "symbol": "ADAUSDT", "action": "OPEN_LONG",
         "decision": "EXECUTE", "qty": "NaN"},
        harvest("e2e-close-doge", "DOGEUSDT"),
        harvest("e2e-close-sol", "SOLUSDT"),
    ])
}

/// Every entry's fields in one of the service's output streams.
fn stream(url: &str, key: &str) -> Vec<BTreeMap<String, String>> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    entries.into_iter().map(|(_, f)| f).collect()
}

/// `(verdict, reason)` by plan id from the service's decisions stream.
fn live_verdicts(url: &str) -> BTreeMap<String, (String, String)> {
    stream(url, "quantum:stream:governor.decisions")
        .into_iter()
        .map(|f| {
            let reason = f.get("reason").cloned().unwrap_or_default();
            (f["plan_id"].clone(), (f["verdict"].clone(), reason))
        })
        .collect()
}

/// The plan ids in the service's dead-letter stream.
fn dead_lettered(url: &str) -> Vec<String> {
    stream(url, "quantum:stream:governor.deadletter")
        .into_iter()
        .filter_map(|f| f.get("plan_id").cloned())
        .collect()
}

/// One attempt; `None` when the wall clock crossed an hour (the bars the service sees moved
/// under the plans) and the attempt must be repeated.
fn attempt() -> Option<()> {
    let started = wall_clock();
    let redis = RedisServer::start();
    support::set_universe(
        &redis.url(),
        &[
            "ADAUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("klines");
    std::fs::create_dir(&data).unwrap();
    let marks = wall_clock_copy(&data);
    let log = dir.path().join("serve.log");
    let mut child = support::governor_command()
        .args([
            "serve",
            "--redis",
            &redis.url(),
            "--with-executor",
            "--workers",
            "1",
        ])
        .arg("--data")
        .arg(&data)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let py = Command::new("python3")
        .args(["-c", WRITE, &redis.url(), &plans(&marks).to_string()])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        py.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&py.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    if hour_of(wall_clock()) != hour_of(started) {
        return None;
    }
    let live = live_verdicts(&redis.url());

    let export = Command::new(env!("CARGO_BIN_EXE_quantum-governor"))
        .args(["plans", "export", "--redis", &redis.url()])
        .output()
        .unwrap();
    let jsonl = support::succeeded(export);
    let plans_file = dir.path().join("plans.jsonl");
    std::fs::write(&plans_file, &jsonl).unwrap();
    assert_eq!(
        jsonl.lines().count(),
        7,
        "every plan the client wrote:\n{jsonl}"
    );

    let out = dir.path().join("out");
    let replay = support::governor_command()
        .args(["replay", "--quiet", "--heat", "off"])
        .arg("--data")
        .arg(&data)
        .arg("--plans")
        .arg(&plans_file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let summary = support::succeeded(replay);
    assert!(
        summary.contains("recorded plans: 7 played at their times"),
        "{summary}"
    );
    let journal = std::fs::read_to_string(out.join("decisions.jsonl")).unwrap();
    let replayed: BTreeMap<String, (String, String)> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|d| {
            (
                d["plan_id"].as_str().unwrap().to_owned(),
                (
                    d["verdict"].as_str().unwrap().to_owned(),
                    d["reason"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();

    // The malformed plan: dead-lettered in both, decided in neither.
    assert!(!replayed.contains_key("e2e-bad"));
    let rejected = std::fs::read_to_string(out.join("rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(
        rejected.contains("e2e-bad") && rejected.contains("qty"),
        "{rejected}"
    );
    assert!(!live.contains_key("e2e-bad"), "{live:?}");
    assert_eq!(dead_lettered(&redis.url()), ["e2e-bad"]);
    assert_eq!(replayed, live, "the replay decides as the service did");
    // The comparison means something: both verdicts appear, and the aliased closes executed.
    let verdicts: Vec<&str> = replayed.values().map(|v| v.0.as_str()).collect();
    assert!(
        verdicts.contains(&"ALLOW") && verdicts.contains(&"BLOCK"),
        "{replayed:?}"
    );
    assert_eq!(replayed["e2e-close-btc"].0, "ALLOW", "{replayed:?}");
    Some(())
}

#[test]
fn recorded_plans_replay_to_the_verdicts_the_service_gave_them() {
    let deadline = Instant::now() + Duration::from_secs(600);
    while attempt().is_none() {
        assert!(Instant::now() < deadline, "the hour kept changing");
    }
}

//! The portfolio heat gate (P2.6) on a real redis-server, as a process, and embedded.

mod support;

use governor_core::config::HeatMode;
use governor_core::snapshot::{ExchangePosition, ExchangeState};
use governor_core::time::Timestamp;
use governor_core::types::{Side, Symbol};
use governor_core::Config;
use quantum_governor::heat::redis::{stats, HeatWorker};
use quantum_governor::inputs::InputsSource;
use quantum_governor::store::redis::RedisStore;
use quantum_governor::MarketInputs;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use support::redis_server::RedisServer;

/// A fixed account: the heat gate's view of positions and equity.
struct FixedAccount(MarketInputs);

impl InputsSource for FixedAccount {
    fn inputs(&self, _now: Timestamp) -> MarketInputs {
        self.0.clone()
    }
}

fn clock() -> Timestamp {
    Timestamp(1_750_000_000_000)
}

/// 10,000 USDT of equity holding `positions` (symbol, notional) at a mark of 100.
fn account(positions: &[(&str, f64)]) -> Arc<dyn InputsSource> {
    let positions = positions
        .iter()
        .map(|(s, notional)| {
            let p = ExchangePosition {
                side: Side::Long,
                qty: notional / 100.0,
                entry_price: 100.0,
                mark_price: 100.0,
                leverage: 5,
            };
            (Symbol::parse(s).unwrap(), p)
        })
        .collect();
    Arc::new(FixedAccount(MarketInputs {
        exchange: Some(ExchangeState {
            equity_usdt: 10_000.0,
            positions,
            clock: governor_core::snapshot::ExchangeClock::Local,
        }),
        ..MarketInputs::default()
    }))
}

struct Rig {
    _server: RedisServer,
    url: String,
    conn: redis::Connection,
    cfg: Config,
}

impl Rig {
    fn new(mode: HeatMode) -> Rig {
        let server = RedisServer::start();
        let url = server.url();
        let conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut cfg = Config::default();
        cfg.heat.mode = mode;
        Rig {
            _server: server,
            url,
            conn,
            cfg,
        }
    }

    fn cmd(&mut self, args: &[&str]) -> redis::Value {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.conn).unwrap()
    }

    fn hash(&mut self, key: &str) -> BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.conn)
            .unwrap()
    }

    fn propose(&mut self, fields: &[(&str, &str)]) {
        let mut c = redis::cmd("XADD");
        c.arg("quantum:stream:harvest.proposal").arg("*");
        for (k, v) in fields {
            c.arg(*k).arg(*v);
        }
        c.query::<String>(&mut self.conn).unwrap();
    }

    /// Runs a heat worker until `n` entries were handled.
    fn run_worker(&self, inputs: Arc<dyn InputsSource>, n: usize) {
        let mut w = HeatWorker::connect(
            &self.url,
            Arc::new(self.cfg.clone()),
            inputs,
            "t",
            clock,
            30_000,
        )
        .unwrap();
        let mut handled = 0;
        for _ in 0..50 {
            handled += w.step(50).unwrap();
            if handled >= n {
                return;
            }
        }
        panic!("handled {handled} of {n}");
    }

    fn stream(&self, suffix: &str) -> Vec<BTreeMap<String, String>> {
        let store = RedisStore::open(&self.url, "quantum:", 3600, "reader").unwrap();
        store
            .read_stream(suffix)
            .unwrap()
            .into_iter()
            .map(|fields| fields.into_iter().collect())
            .collect()
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        stats(&RedisStore::open(&self.url, "quantum:", 3600, "reader").unwrap()).unwrap()
    }

    fn pending(&mut self) -> i64 {
        let v: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg("quantum:stream:harvest.proposal")
            .arg("p26_heat_gate")
            .query(&mut self.conn)
            .unwrap();
        redis::from_redis_value(&v[0]).unwrap()
    }
}

/// 50,000 of BTCUSDT at sigma 4 % on 10,000: load 0.2, heat 1 − e^(−1.6) = 0.798, HOT.
fn hot_book(rig: &mut Rig) -> Arc<dyn InputsSource> {
    rig.cmd(&["HSET", "quantum:marketstate:BTCUSDT", "sigma", "0.04"]);
    account(&[("BTCUSDT", 50_000.0)])
}

#[test]
fn shadow_publishes_and_compares_but_never_writes_the_proposal_hash() {
    let mut rig = Rig::new(HeatMode::Shadow);
    let inputs = hot_book(&mut rig);
    rig.cmd(&[
        "HSET",
        "quantum:harvest:proposal:BTCUSDT",
        "harvest_action",
        "FULL_CLOSE_PROPOSED",
        "kill_score",
        "0.5",
    ]);
    let before = rig.hash("quantum:harvest:proposal:BTCUSDT");
    rig.propose(&[
        ("plan_id", "h1"),
        ("symbol", "BTCUSDT"),
        ("harvest_action", "FULL_CLOSE_PROPOSED"),
        ("kill_score", "0.5"),
    ]);
    // The incident's proposal: `action` only.
    rig.propose(&[
        ("plan_id", "h2"),
        ("symbol", "BTCUSDT"),
        ("action", "FULL_CLOSE_PROPOSED"),
    ]);
    rig.propose(&[
        ("plan_id", "h3"),
        ("symbol", "BTCUSDT"),
        ("harvest_action", "CLOSE_ALL"),
    ]);
    rig.run_worker(inputs, 3);

    assert_eq!(
        rig.hash("quantum:harvest:proposal:BTCUSDT"),
        before,
        "shadow writes nothing"
    );
    let out = rig.stream("stream:harvest.calibrated");
    assert_eq!(out.len(), 1, "{out:?}");
    let e = &out[0];
    assert_eq!(e["plan_id"], "h1");
    assert_eq!(
        e["harvest_action"], "FULL_CLOSE_PROPOSED",
        "the proposal as written"
    );
    assert_eq!(e["calibrated_action"], "PARTIAL_50");
    assert_eq!(e["action"], "PARTIAL_50");
    assert_eq!(e["calibrated"], "1");
    assert_eq!(e["heat_bucket"], "HOT");
    assert!(
        (e["heat"].parse::<f64>().unwrap() - 0.79810).abs() < 1e-4,
        "{e:?}"
    );
    assert_eq!(e["enforced"], "shadow");
    assert_eq!(e["mode"], "shadow");
    assert!(e["heat_trace"].contains(r#""sigma_source":"marketstate""#));

    let dead = rig.stream("stream:governor.deadletter");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0]["error"].contains("harvest_action"), "{:?}", dead[0]);
    assert_eq!(
        dead[0]["action"], "FULL_CLOSE_PROPOSED",
        "original fields kept"
    );
    assert!(dead[1]["error"].contains("CLOSE_ALL"), "{:?}", dead[1]);
    assert!(dead.iter().all(|d| d["source"] == "harvest.proposal"));

    let s = rig.stats();
    assert_eq!(s.get("proposals"), Some(&1));
    assert_eq!(s.get("rejected"), Some(&2));
    assert_eq!(s.get("shadow"), Some(&1));
    assert_eq!(s.get("downgraded"), Some(&1));
    assert_eq!(rig.pending(), 0, "everything acknowledged");
}

#[test]
fn enforce_writes_the_calibrated_action_only_into_the_same_proposal() {
    let mut rig = Rig::new(HeatMode::Enforce);
    let inputs = hot_book(&mut rig);
    rig.cmd(&[
        "HSET",
        "quantum:harvest:proposal:BTCUSDT",
        "harvest_action",
        "FULL_CLOSE_PROPOSED",
    ]);
    // ETHUSDT's hash holds a newer proposal than the one on the stream.
    rig.cmd(&[
        "HSET",
        "quantum:harvest:proposal:ETHUSDT",
        "harvest_action",
        "PARTIAL_25",
    ]);
    rig.propose(&[
        ("plan_id", "b1"),
        ("symbol", "BTCUSDT"),
        ("harvest_action", "FULL_CLOSE_PROPOSED"),
    ]);
    rig.propose(&[
        ("plan_id", "e1"),
        ("symbol", "ETHUSDT"),
        ("harvest_action", "PARTIAL_75"),
    ]);
    rig.propose(&[
        ("plan_id", "s1"),
        ("symbol", "SOLUSDT"),
        ("harvest_action", "PARTIAL_50"),
    ]);
    rig.run_worker(inputs, 3);

    let btc = rig.hash("quantum:harvest:proposal:BTCUSDT");
    assert_eq!(btc["action"], "PARTIAL_50");
    assert_eq!(btc["calibrated"], "1");
    assert_eq!(
        btc["harvest_action"], "FULL_CLOSE_PROPOSED",
        "harvest's field untouched"
    );
    let eth = rig.hash("quantum:harvest:proposal:ETHUSDT");
    assert_eq!(eth.len(), 1, "a stale proposal is not overwritten: {eth:?}");
    assert!(
        rig.hash("quantum:harvest:proposal:SOLUSDT").is_empty(),
        "no hash is created"
    );
    let enforced: Vec<String> = rig
        .stream("stream:harvest.calibrated")
        .iter()
        .map(|e| e["enforced"].clone())
        .collect();
    assert_eq!(enforced, ["written", "stale_proposal", "missing_proposal"]);
}

#[test]
fn a_portfolio_without_sigma_or_atr_is_passed_on_uncalibrated_and_never_enforced() {
    let mut rig = Rig::new(HeatMode::Enforce);
    rig.cmd(&[
        "HSET",
        "quantum:harvest:proposal:ETHUSDT",
        "harvest_action",
        "FULL_CLOSE_PROPOSED",
    ]);
    rig.cmd(&["HSET", "quantum:marketstate:ETHUSDT", "sigma", "NaN"]);
    rig.propose(&[
        ("plan_id", "u1"),
        ("symbol", "ETHUSDT"),
        ("harvest_action", "FULL_CLOSE_PROPOSED"),
    ]);
    rig.run_worker(account(&[("ETHUSDT", 40_000.0)]), 1);
    let e = &rig.stream("stream:harvest.calibrated")[0];
    assert_eq!(e["calibrated"], "0");
    assert!(
        !e.contains_key("action"),
        "no action for an uncalibrated proposal: {e:?}"
    );
    assert_eq!(e["calibrated_action"], "FULL_CLOSE_PROPOSED");
    assert_eq!(e["enforced"], "uncalibrated");
    assert!(
        e["heat_trace"].contains("\\\"NaN\\\""),
        "the bad sigma is named: {e:?}"
    );
    assert_eq!(rig.hash("quantum:harvest:proposal:ETHUSDT").len(), 1);
}

/// Waits for the heat process's first calibrated entry, stops it, and returns its stdout.
fn log_after_first_calibration(rig: &Rig, child: std::process::Child) -> String {
    let mut child = child;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rig.stream("stream:harvest.calibrated").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no calibrated entry");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bin() -> Command {
    support::governor_command()
}

#[test]
fn the_heat_process_runs_on_redis_and_an_unknown_mode_stops_it() {
    let bad = bin()
        .args(["heat", "--redis", "redis://127.0.0.1:1/"])
        .env("P26_MODE", "loud")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("P26_MODE"));

    let mut rig = Rig::new(HeatMode::Enforce);
    rig.cmd(&[
        "HSET",
        "quantum:harvest:proposal:BTCUSDT",
        "harvest_action",
        "PARTIAL_75",
    ]);
    let child = bin()
        .args(["heat", "--redis", &rig.url, "--name", "heat-t"])
        .env("P26_MODE", "enforce")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    rig.propose(&[
        ("plan_id", "p1"),
        ("symbol", "BTCUSDT"),
        ("harvest_action", "PARTIAL_75"),
    ]);
    let log = log_after_first_calibration(&rig, child);
    // The paper account starts empty: COLD, unchanged, and written as calibrated.
    assert!(
        log.contains("SHADOW-COMPARE plan=p1 proposal=PARTIAL_75 calibrated=PARTIAL_75 heat=0.0000 bucket=COLD downgraded=false reason=unchanged enforced=written"),
        "{log}"
    );
    assert_eq!(
        rig.hash("quantum:harvest:proposal:BTCUSDT")["calibrated"],
        "1"
    );
}

#[test]
fn the_embedded_heat_command_answers_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let proposals = dir.path().join("p.jsonl");
    std::fs::write(
        &proposals,
        concat!(
            r#"{"plan_id":"a","symbol":"SOLUSDT","harvest_action":"FULL_CLOSE_PROPOSED"}"#,
            "\n",
            r#"{"plan_id":"b","symbol":"SOLUSDT","action":"FULL_CLOSE_PROPOSED"}"#,
            "\n",
            "not json\n",
        ),
    )
    .unwrap();
    let out = bin()
        .args(["heat", "--state", "examples/state.json", "--proposals"])
        .arg(&proposals)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused proposal makes it exit 1"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "one output line per input line");
    assert_eq!(lines[0]["calibrated_action"], "FULL_CLOSE_PROPOSED");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("harvest_action"));
    assert!(lines[2]["error"].as_str().unwrap().contains("line-3"));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("SHADOW-COMPARE").count(), 1, "{log}");
    assert_eq!(log.matches("HEAT_REJECTED").count(), 2, "{log}");
}

#[test]
fn the_heat_process_on_binance_sees_the_real_accounts_8_7x_book_as_hot() {
    use support::fake_binance::{FakeBinance, KEY, SECRET};
    let mut rig = Rig::new(HeatMode::Shadow);
    let fake = FakeBinance::start(None);
    {
        // The incident's book: 118,844 USDT of notional on 13,661 of equity (8.7x).
        let mut st = fake.state.lock().unwrap();
        st.equity = Some(13_661.0);
        for (s, qty, mark) in [
            ("BTCUSDT", 1.0, 60_000.0),
            ("ETHUSDT", 15.0, 3_000.0),
            ("SOLUSDT", 100.0, 138.44),
        ] {
            st.positions.insert(s.to_owned(), (qty, mark));
        }
    }
    for s in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        rig.cmd(&["HSET", &format!("quantum:marketstate:{s}"), "sigma", "0.04"]);
    }
    let child = bin()
        .args(["heat", "--redis", &rig.url, "--exchange", "binance"])
        .env("GOV_BINANCE_BASE_URL", &fake.url)
        .env("BINANCE_TESTNET_API_KEY", KEY)
        .env("BINANCE_TESTNET_API_SECRET", SECRET)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    rig.propose(&[
        ("plan_id", "hot-1"),
        ("symbol", "BTCUSDT"),
        ("harvest_action", "FULL_CLOSE_PROPOSED"),
    ]);
    let log = log_after_first_calibration(&rig, child);
    // heat = 1 − exp(−8 × 118,844 × 0.04 / 13,661) = 1 − exp(−2.78400) = 0.93820, by hand.
    assert!(
        log.contains("SHADOW-COMPARE plan=hot-1 proposal=FULL_CLOSE_PROPOSED calibrated=PARTIAL_50 heat=0.9382 bucket=HOT"),
        "{log}"
    );
    assert!(log.contains("exchange=binance"), "{log}");
    assert!(fake.hits("GET /fapi/v2/positionRisk") >= 1);
    assert!(!log.contains(KEY) && !log.contains(SECRET));
}

//! The slot race on real redis-servers, for any account's key prefix: plans published, the
//! slot table sampled, permits taken and results reported as an executor would, and the final
//! record checked (one decision per plan, one permit per plan, nothing pending).

use super::redis_server::RedisServer;
use super::*;
use governor_core::Config;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::paper_market::PaperMarket;
use quantum_governor::inputs::InputsSource;
use quantum_governor::store::redis::RedisStore;
use quantum_governor::streams::PLAN_GROUP;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn write_data(dir: &Path) {
    write_thirty_symbols(dir);
}

/// Limits opened wide so that slots fill up and churn: the race is for the slots.
pub fn racing_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GOV_MAX_EXEC_PER_HOUR", "10000"),
        ("GOV_MAX_EXEC_PER_5MIN", "10000"),
        ("GOV_SYMBOL_COOLDOWN_SECONDS", "0"),
        ("GOV_MAX_TOTAL_NOTIONAL_USDT", "100000000"),
    ]
}

pub fn racing_config() -> Config {
    let env: Vec<(String, String)> = racing_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Config::load(None, &env).unwrap()
}

pub struct Serve(pub Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(url: &str, data: &Path, name: &str, env: &[(&str, &str)]) -> Serve {
    serve_with(url, data, name, env, &[])
}

pub fn serve_with(
    url: &str,
    data: &Path,
    name: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quantum-governor"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GOV_") || k == "P26_MODE" {
            cmd.env_remove(k);
        }
    }
    cmd.args(["serve", "--redis", url, "--name", name, "--data"])
        .arg(data)
        .args(args);
    // One plan worker per process unless `args` says how many.
    if !args.contains(&"--workers") {
        cmd.args(["--workers", "1"]);
    }
    cmd.envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve {name} exited at start-up"
    );
    Serve(child)
}

pub fn conn(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Publishes the open plans `race-{i}` for `i` in `ids`.
pub fn publish_opens(
    c: &mut redis::Connection,
    prefix: &str,
    ids: std::ops::Range<usize>,
    marks: &BTreeMap<String, f64>,
) {
    let symbols = thirty_symbols();
    let mut pipe = redis::pipe();
    for i in ids {
        let s = &symbols[(i * 7) % symbols.len()];
        let side = if i % 3 == 0 {
            "OPEN_SHORT"
        } else {
            "OPEN_LONG"
        };
        let qty = (100.0 / marks[s]).to_string();
        pipe.cmd("XADD")
            .arg(format!("{prefix}stream:apply.plan"))
            .arg("*")
            .arg(&[
                "plan_id",
                &format!("race-{i}"),
                "symbol",
                s,
                "action",
                side,
                "decision",
                "EXECUTE",
                "qty",
                &qty,
                "score",
                "60",
            ])
            .ignore();
        if pipe.len() >= 1000 {
            pipe.query::<()>(c).unwrap();
            pipe = redis::pipe();
        }
    }
    pipe.query::<()>(c).unwrap();
}

pub fn set_race_universe(c: &mut redis::Connection, prefix: &str) {
    let mut universe = thirty_symbols();
    universe.push("BTCUSDT".to_owned());
    redis::cmd("HSET")
        .arg(format!("{prefix}policy:current"))
        .arg("universe_symbols")
        .arg(serde_json::to_string(&universe).unwrap())
        .query::<()>(c)
        .unwrap();
}

pub fn marks(data: &Path, store: Arc<RedisStore>) -> BTreeMap<String, f64> {
    let market = PaperMarket::load(data, wall_clock(), 10_000.0, store, 100).unwrap();
    market
        .inputs(wall_clock())
        .market
        .iter()
        .map(|(s, m)| (s.to_string(), m.last_close))
        .collect()
}

pub fn slot_count(c: &mut dyn redis::ConnectionLike, prefix: &str) -> usize {
    redis::cmd("HLEN")
        .arg(format!("{prefix}governor:slots"))
        .query(c)
        .unwrap()
}

/// Samples the slot table until told to stop; returns the largest count seen and how many
/// samples it took.
pub fn watcher(
    url: String,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let (mut max, mut samples) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            max = max.max(slot_count(&mut c, &prefix));
            samples += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        (max, samples)
    })
}

/// Takes permits and reports half the orders filled and half failed, so slots churn.
pub fn executor(
    url: String,
    prefix: String,
    stop: Arc<AtomicBool>,
    filled: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}permit:*"))
                .query(&mut c)
                .unwrap();
            for k in keys {
                let Some(raw): Option<String> = redis::cmd("GETDEL").arg(&k).query(&mut c).unwrap()
                else {
                    continue;
                };
                let p: serde_json::Value = serde_json::from_str(&raw).unwrap();
                n += 1;
                let ok = n.is_multiple_of(2);
                let qty = p["qty"].to_string();
                let fields: Vec<(&str, String)> = vec![
                    ("plan_id", p["plan_id"].as_str().unwrap().to_owned()),
                    ("symbol", p["symbol"].as_str().unwrap().to_owned()),
                    ("executed", ok.to_string()),
                    ("reduceOnly", "false".into()),
                    ("action", p["action"].as_str().unwrap().to_owned()),
                    ("filled_qty", if ok { qty } else { "0".into() }),
                    (
                        "avg_price",
                        if ok {
                            (p["notional"].as_f64().unwrap() / p["qty"].as_f64().unwrap())
                                .to_string()
                        } else {
                            "0".into()
                        },
                    ),
                    (
                        "error",
                        if ok {
                            String::new()
                        } else {
                            "-2019 Margin is insufficient".into()
                        },
                    ),
                ];
                let mut cmd = redis::cmd("XADD");
                cmd.arg(format!("{prefix}stream:apply.result")).arg("*");
                for (k, v) in fields
                    .iter()
                    .filter(|(k, v)| !(*k == "error" && v.is_empty()))
                {
                    cmd.arg(*k).arg(v);
                }
                cmd.query::<String>(&mut c).unwrap();
                if ok {
                    filled.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// Every plan has exactly one terminal decision; no plan got two permits.
pub fn check_final_record(c: &mut redis::Connection, prefix: &str, n: usize) {
    let decisions: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}governor:decision:race-*"))
        .query(c)
        .unwrap();
    assert_eq!(decisions.len(), n, "every plan decided");
    let stream_len: usize = redis::cmd("XLEN")
        .arg(format!("{prefix}stream:governor.decisions"))
        .query(c)
        .unwrap();
    assert_eq!(stream_len, n, "one decision stream entry per plan");
    let counts: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}governor:permits_granted:*"))
        .query(c)
        .unwrap();
    for k in counts {
        let v: usize = redis::cmd("GET").arg(&k).query(c).unwrap();
        assert_eq!(v, 1, "{k}");
    }
    assert_eq!(pending(c, prefix), 0, "nothing left pending");
}

/// Entries of the plan stream delivered to the governor group and not acknowledged.
pub fn pending(c: &mut redis::Connection, prefix: &str) -> usize {
    pending_now(c, prefix).expect("XPENDING answers")
}

/// [`pending`], `None` while the server does not answer it (a restarted one still loading).
fn pending_now(c: &mut redis::Connection, prefix: &str) -> Option<usize> {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{prefix}stream:apply.plan"))
        .arg(PLAN_GROUP)
        .query(c)
        .ok()?;
    let redis::Value::Array(summary) = reply else {
        panic!("{reply:?}")
    };
    Some(redis::from_redis_value::<usize>(&summary[0]).unwrap())
}

/// Waits until no plan waits for its acknowledgement: a batch is acknowledged one round trip
/// after its commit, and a governor stopped in between would leave it pending.
pub fn wait_for_acks(c: &mut redis::Connection, prefix: &str, limit: Duration) {
    let started = Instant::now();
    while pending_now(c, prefix) != Some(0) {
        assert!(
            started.elapsed() < limit,
            "{:?} plans still pending after {limit:?}",
            pending_now(c, prefix)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `n` plans are decided.
pub fn wait_for_decisions(c: &mut redis::Connection, prefix: &str, n: usize, limit: Duration) {
    let started = Instant::now();
    loop {
        // A restarted server may answer LOADING for a moment: that is "not yet".
        let done: usize = redis::cmd("XLEN")
            .arg(format!("{prefix}stream:governor.decisions"))
            .query(c)
            .unwrap_or(0);
        if done >= n {
            return;
        }
        if started.elapsed() >= limit {
            let dead: usize = redis::cmd("XLEN")
                .arg(format!("{prefix}stream:governor.deadletter"))
                .query(c)
                .unwrap_or(0);
            let dl: redis::Value = redis::cmd("XRANGE")
                .arg(format!("{prefix}stream:governor.deadletter"))
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(3)
                .query(c)
                .unwrap_or(redis::Value::Nil);
            panic!(
                "{done} of {n} decided after {limit:?}; {} pending, {dead} dead-lettered: {dl:?}",
                pending(c, prefix)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

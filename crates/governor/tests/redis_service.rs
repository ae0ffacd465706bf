//! The service on a real redis-server: what the deployment relies on.

mod support;

use governor_core::Config;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::paper_market::PaperMarket;
use quantum_governor::inputs::InputsSource;
use quantum_governor::service::workers::PlanWorker;
use quantum_governor::store::redis::RedisStore;
use quantum_governor::streams::consumer::GroupConsumer;
use quantum_governor::streams::{Streams, PLAN_GROUP};
use quantum_governor::Governor;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::race::*;
use support::redis_server::RedisServer;
use support::*;

const PREFIX: &str = "quantum:";

/// A redis-server (AOF on when asked) with the 30-symbol data, the policy universe and `n`
/// open plans already in the plan stream.
fn flowing(n: usize, redis_args: &[&str]) -> (RedisServer, tempfile::TempDir, redis::Connection) {
    let server = RedisServer::start_with(redis_args);
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let mut c = conn(&server);
    set_race_universe(&mut c, PREFIX);
    let admin = Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "admin").unwrap());
    let marks = marks(data.path(), admin);
    publish_opens(&mut c, PREFIX, 0..n, &marks);
    (server, data, c)
}

#[test]
fn race_8_governor_tasks_never_exceed_4_slots() {
    const N: usize = 20_000;
    let (server, data, mut c) = flowing(0, &["--appendonly", "no"]);
    let cfg = Arc::new(racing_config());
    let admin = Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "admin").unwrap());
    // The plans arrive over about 4 s, in 100 slices, while the governors run, so that the
    // executor's fills and failures take and free slots during the flow however fast the
    // governors decide: a backlog published at once was decided before ten orders had filled.
    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let (url, marks, publishing) = (
            server.url(),
            marks(data.path(), admin.clone()),
            publishing.clone(),
        );
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            for slice in 0..100 {
                publish_opens(
                    &mut c,
                    PREFIX,
                    slice * N / 100..(slice + 1) * N / 100,
                    &marks,
                );
                std::thread::sleep(Duration::from_millis(40));
            }
            publishing.store(false, Ordering::SeqCst);
        })
    };
    let inputs: Arc<dyn InputsSource> =
        Arc::new(PaperMarket::load(data.path(), wall_clock(), 10_000.0, admin, 100).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watcher(server.url(), PREFIX.to_owned(), stop.clone());
    let filled = Arc::new(AtomicUsize::new(0));
    let exec = executor(
        server.url(),
        PREFIX.to_owned(),
        stop.clone(),
        filled.clone(),
    );
    let streams = Streams::new(PREFIX);
    let mut results = quantum_governor::service::workers::ResultWorker {
        gov: Governor::new(
            cfg.clone(),
            Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "results").unwrap()),
        ),
        consumer: GroupConsumer::new(
            &server.url(),
            &streams.results,
            "governor-results",
            "results",
        )
        .unwrap(),
        inputs: inputs.clone(),
        clock: wall_clock,
        reclaim_idle_ms: 30_000,
    };
    results.consumer.ensure_group().unwrap();
    let stop_results = stop.clone();
    let result_thread = std::thread::spawn(move || {
        while !stop_results.load(Ordering::Relaxed) {
            results.step(50).unwrap();
        }
    });
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let mut worker = PlanWorker::connect(
                &server.url(),
                cfg.clone(),
                inputs.clone(),
                &format!("g{i}"),
                30_000,
            )
            .unwrap();
            let publishing = publishing.clone();
            std::thread::spawn(move || {
                let mut idle = 0;
                while publishing.load(Ordering::SeqCst) || idle < 3 {
                    let counts = worker.step(100).unwrap();
                    idle = if counts.acked + counts.left_pending == 0 {
                        idle + 1
                    } else {
                        0
                    };
                }
            })
        })
        .collect();
    publisher.join().unwrap();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (max_slots, samples) = watch.join().unwrap();
    exec.join().unwrap();
    result_thread.join().unwrap();
    assert!(samples > 100, "the watcher sampled {samples} times");
    assert!(max_slots <= 4, "{max_slots} slots occupied at once");
    assert_eq!(max_slots, 4, "the slots did fill up");
    assert!(
        filled.load(Ordering::Relaxed) > 10,
        "orders filled and slots churned"
    );
    check_final_record(&mut c, PREFIX, N);
}

#[test]
fn race_8_governor_processes_never_exceed_4_slots() {
    const N: usize = 20_000;
    let (server, data, mut c) = flowing(N, &["--appendonly", "no"]);
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watcher(server.url(), PREFIX.to_owned(), stop.clone());
    let filled = Arc::new(AtomicUsize::new(0));
    let exec = executor(
        server.url(),
        PREFIX.to_owned(),
        stop.clone(),
        filled.clone(),
    );
    let env = racing_env();
    let procs: Vec<Serve> = (0..8)
        .map(|i| serve(&server.url(), data.path(), &format!("p{i}"), &env))
        .collect();
    wait_for_decisions(&mut c, PREFIX, N, Duration::from_secs(600));
    wait_for_acks(&mut c, PREFIX, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let (max_slots, samples) = watch.join().unwrap();
    exec.join().unwrap();
    drop(procs);
    assert!(samples > 100);
    assert!(max_slots <= 4, "{max_slots} slots occupied at once");
    assert_eq!(max_slots, 4);
    check_final_record(&mut c, PREFIX, N);
}

#[test]
fn every_contract_environment_name_takes_effect_in_serve() {
    let server = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let env = [
        ("GOV_ACTIVE_SLOTS_ENABLED", "false"),
        ("GOV_ACTIVE_SLOTS_BASE", "5"),
        ("GOV_ACTIVE_SLOTS_TREND_STRONG", "7"),
        ("GOV_ACTIVE_SLOTS_CHOP", "2"),
        ("GOV_ROTATION_THRESHOLD", "0.2"),
        ("GOV_MAX_CORRELATION", "0.7"),
        ("GOV_ROTATION_LOCK_TTL", "90"),
        ("GOV_MAX_MARGIN_USAGE_PCT", "0.5"),
        ("GOV_MAX_OPEN_POSITIONS", "8"),
        ("GOV_MAX_NOTIONAL_PER_TRADE_USDT", "150"),
        ("GOV_MAX_TOTAL_NOTIONAL_USDT", "1500"),
        ("GOV_SYMBOL_COOLDOWN_SECONDS", "30"),
        ("GOV_MAX_EXEC_PER_HOUR", "6"),
        ("GOV_MAX_EXEC_PER_5MIN", "4"),
        ("GOV_PERMIT_TTL", "45"),
        ("GOV_KEY_PREFIX", "quantum:{acct7}:"),
        ("GOV_BINANCE_BASE_URL", "http://127.0.0.1:9"),
        ("GOV_TESTNET_ENABLE_P29", "true"),
        ("GOV_MODE", "production"),
        ("P26_MODE", "enforce"),
        ("GOV_ADMIN_TOKEN", "not-part-of-the-config"),
    ];
    let _serve = serve(&server.url(), data.path(), "env", &env);
    let mut c = conn(&server);
    let key = "quantum:{acct7}:governor:config";
    let started = Instant::now();
    let toml: String = loop {
        if let Some(t) = redis::cmd("GET")
            .arg(key)
            .query::<Option<String>>(&mut c)
            .unwrap()
        {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve never wrote {key}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!toml.contains("not-part-of-the-config"));
    let cfg = Config::load(Some(&toml), &[]).unwrap();
    let expected = Config::load(
        None,
        &env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(cfg, expected);
    assert!(!cfg.slots.enabled);
    assert_eq!(cfg.key_prefix, "quantum:{acct7}:");
    assert_eq!(cfg.permit_ttl_secs, 45);
    assert_eq!(cfg.mode, governor_core::config::Mode::Production);
}

#[test]
fn redis_restarted_with_aof_loses_no_decision_and_the_service_recovers() {
    const N: usize = 3000;
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let (server, data, mut c) = flowing(N, &aof);
    let mut service = serve(&server.url(), data.path(), "aof", &racing_env());
    // Pull the plug while plans flow.
    wait_for_decisions(&mut c, PREFIX, 100, Duration::from_secs(60));
    drop(c);
    let (dir, port) = server.stop();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        service.0.try_wait().unwrap().is_none(),
        "the service survives the outage"
    );
    let server = RedisServer::start_in(dir, port, &aof);
    let mut c = conn(&server);
    // It reconnects by itself and finishes: every plan exactly once, nothing lost, nothing
    // decided twice (a plan decided but not acknowledged before the outage is replayed, not
    // re-decided).
    wait_for_decisions(&mut c, PREFIX, N, Duration::from_secs(300));
    wait_for_acks(&mut c, PREFIX, Duration::from_secs(60));
    check_final_record(&mut c, PREFIX, N);
}

#[test]
fn a_malformed_entry_is_dead_lettered_at_once_with_its_fields() {
    let server = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let mut c = conn(&server);
    set_race_universe(&mut c, PREFIX);
    let _serve = serve(&server.url(), data.path(), "dl", &[]);
    redis::cmd("XADD")
        .arg(format!("{PREFIX}stream:apply.plan"))
        .arg("*")
        .arg(&[
            "plan_id",
            "bad-1",
            "symbol",
            "S01USDT",
            "action",
            "OPEN_LONG",
            "decision",
            "EXECUTE",
            "qty",
            "NaN",
        ])
        .query::<String>(&mut c)
        .unwrap();
    let started = Instant::now();
    loop {
        let n: usize = redis::cmd("XLEN")
            .arg(format!("{PREFIX}stream:governor.deadletter"))
            .query(&mut c)
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    let store = RedisStore::open(&server.url(), PREFIX, 3600, "t").unwrap();
    let dl = store.read_stream("stream:governor.deadletter").unwrap();
    let f: BTreeMap<&str, &str> = dl[0]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(f["qty"], "NaN");
    assert_eq!(f["plan_id"], "bad-1");
    assert!(f["error"].contains("`qty` = \"NaN\""), "{}", f["error"]);
    let started = Instant::now();
    loop {
        if pending(&mut c, PREFIX) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the malformed entry must be acknowledged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_20_times_while_plans_flow_loses_nothing_and_doubles_nothing() {
    const N: usize = 4000;
    const KILLS: usize = 20;
    let (server, data, mut c) = flowing(N, &["--appendonly", "no"]);
    // Short permits so that "no reservation outlives its TTL" is checked within the test.
    let mut env = racing_env();
    env.push(("GOV_PERMIT_TTL", "2"));
    // Well above the slowest batch of a debug build on a loaded 2-core machine: a shorter idle
    // time steals entries still being decided, which is what it must not do.
    let reclaim = ["--reclaim-idle-ms", "5000"];
    let mut procs: Vec<Serve> = (0..3)
        .map(|i| serve_with(&server.url(), data.path(), &format!("k{i}"), &env, &reclaim))
        .collect();
    let mut noise = Noise::new(42);
    for k in 0..KILLS {
        let pause = 40 + (noise.normal().abs() * 80.0) as u64;
        std::thread::sleep(Duration::from_millis(pause));
        let victim = k % procs.len();
        procs[victim].0.kill().unwrap(); // SIGKILL: no chance to clean up
        procs[victim].0.wait().unwrap();
        procs[victim] = serve_with(
            &server.url(),
            data.path(),
            &format!("k{victim}-{k}"),
            &env,
            &reclaim,
        );
    }
    wait_for_decisions(&mut c, PREFIX, N, Duration::from_secs(300));
    wait_for_acks(&mut c, PREFIX, Duration::from_secs(60));
    // Wait out the permit TTL, then let the sweeper run.
    std::thread::sleep(Duration::from_secs(4));
    check_final_record(&mut c, PREFIX, N);
    let reservations: usize = redis::cmd("HLEN")
        .arg(format!("{PREFIX}governor:reservations"))
        .query(&mut c)
        .unwrap();
    assert_eq!(reservations, 0, "no reservation outlives its TTL");
    let slots = slot_count(&mut c, PREFIX);
    assert_eq!(slots, 0, "expired reservations gave their slots back");
    let dead: usize = redis::cmd("XLEN")
        .arg(format!("{PREFIX}stream:governor.deadletter"))
        .query(&mut c)
        .unwrap();
    assert_eq!(dead, 0, "nothing was dead-lettered");
    drop(procs);
}

/// Sends `signal` (`STOP`, `CONT`) to a serve process.
fn signal(p: &Serve, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(p.0.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal}");
}

/// The milliseconds of a stream id (Redis's clock).
fn id_ms(id: &str) -> u64 {
    id.split('-').next().unwrap().parse().unwrap()
}

/// Redis's clock, in milliseconds.
fn redis_now_ms(c: &mut redis::Connection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(c).unwrap();
    secs * 1000 + micros / 1000
}

/// Whether `plan` has its decision record.
fn decided(c: &mut redis::Connection, plan: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(format!("{PREFIX}governor:decision:{plan}"))
        .query::<bool>(c)
        .unwrap()
}

/// The plan ids of the entries pending with `consumer`.
fn pending_plans_of(c: &mut redis::Connection, consumer: &str) -> Vec<String> {
    let stream = format!("{PREFIX}stream:apply.plan");
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg(PLAN_GROUP)
        .arg("-")
        .arg("+")
        .arg(1000)
        .arg(consumer)
        .query(c)
        .unwrap();
    rows.iter()
        .map(|(id, ..)| {
            let entry: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(id)
                .arg(id)
                .query(c)
                .unwrap();
            entry.ids[0].get::<String>("plan_id").unwrap()
        })
        .collect()
}

/// Fast failover under load, measured: one of three governors stops dead (SIGSTOP, so that
/// its pending entries are known, then SIGKILL) while a backlog flows; the others take its
/// entries over once its heartbeat expires — the 30 s idle rule stays in force, so only the
/// heartbeat can rescue them in time. Each of its plans is decided within 5 s of the stop,
/// none twice, and no plan gets two permits.
#[test]
fn a_killed_governors_pending_plans_are_decided_within_5_s_by_the_others() {
    // A backlog that outlasts the tries to catch the victim holding undecided entries: once the
    // commit script sent each trace once, all of 6,000 were decided before the tries ended.
    const N: usize = 20_000;
    let (server, data, mut c) = flowing(N, &["--appendonly", "no"]);
    let env = racing_env();
    let mut procs: Vec<Serve> = (0..3)
        .map(|i| serve(&server.url(), data.path(), &format!("f{i}"), &env))
        .collect();
    wait_for_decisions(&mut c, PREFIX, 300, Duration::from_secs(120));
    // Stop the victim at a moment it holds entries it has not decided yet (stopped between a
    // commit and its acknowledgement, it holds only decided ones: nothing to measure, so try
    // again; it reads a new batch as soon as it acked the last one, so a few tries suffice).
    let victim = procs.remove(0);
    let mut held = Vec::new();
    for _ in 0..200 {
        signal(&victim, "STOP");
        held = pending_plans_of(&mut c, "f0-w0")
            .into_iter()
            .filter(|plan| !decided(&mut c, plan))
            .collect();
        if !held.is_empty() {
            break;
        }
        signal(&victim, "CONT");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !held.is_empty(),
        "the victim never held an undecided entry (was the backlog of {N} decided before it was caught?)"
    );
    let stopped_at = redis_now_ms(&mut c);
    let mut victim = victim;
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    wait_for_decisions(&mut c, PREFIX, N, Duration::from_secs(300));
    wait_for_acks(&mut c, PREFIX, Duration::from_secs(60));
    let decided: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{PREFIX}stream:governor.decisions"))
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    let decided_at: BTreeMap<String, u64> = decided
        .ids
        .iter()
        .map(|e| (e.get::<String>("plan_id").unwrap(), id_ms(&e.id)))
        .collect();
    let mut waits: Vec<u64> = held
        .iter()
        .map(|plan| decided_at[plan].saturating_sub(stopped_at))
        .collect();
    waits.sort_unstable();
    let p99 = waits[((waits.len() - 1) as f64 * 0.99).round() as usize];
    eprintln!(
        "failover: {} undecided plans held by the stopped governor; decided after p50 {} ms, p99 {p99} ms, max {} ms",
        waits.len(),
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    assert!(p99 <= 5_000, "p99 {p99} ms after the stop: {waits:?}");
    check_final_record(&mut c, PREFIX, N);
    drop(procs);
}

#[test]
fn wire_compatibility_with_a_python_redis_client() {
    let server = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let admin = Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "admin").unwrap());
    let qty = (100.0 / marks(data.path(), admin)["S01USDT"]).to_string();
    let _serve = serve(&server.url(), data.path(), "wire", &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wire/compat.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(server.url())
        .arg(&qty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // The open: a permit under quantum:permit:{plan_id} with the contract's fields and TTL.
    let permit = &v["permit_open"];
    for field in [
        "plan_id",
        "symbol",
        "action",
        "qty",
        "notional",
        "regime",
        "fence",
        "granted_at",
        "expires_at",
    ] {
        assert!(!permit[field].is_null(), "permit lacks {field}: {permit}");
    }
    assert_eq!(permit["action"], "OPEN_LONG");
    assert!(permit["fence"].as_u64().unwrap() >= 1);
    let ttl = v["permit_ttl_ms"].as_i64().unwrap();
    assert!(ttl > 50_000 && ttl <= 60_000, "permit TTL {ttl} ms");

    // The close written with harvest_action only: a close permit, and the exit lock.
    assert_eq!(
        v["permit_close"]["action"], "FULL_CLOSE_PROPOSED",
        "{}",
        v["permit_close"]
    );
    assert_eq!(v["exit_lock"], "py-close-1");

    // A block record under quantum:governor:block:{plan_id}, TTL 3600 s.
    assert_eq!(v["block_outside"]["reason"], "active_slots_not_in_universe");
    assert!(v["block_ttl_s"].as_i64().unwrap() > 3500);

    // The decisions stream carries the contract's fields.
    let decisions = v["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 3);
    for d in decisions {
        for field in [
            "plan_id",
            "symbol",
            "action",
            "verdict",
            "reason",
            "qty",
            "regime",
            "desired_slots",
            "occupied_slots",
            "trace",
            "ts",
            "governor_id",
        ] {
            assert!(d.get(field).is_some(), "decision lacks {field}: {d}");
        }
        // The trace is the decision's own, one line per gate from the schema on.
        let trace: Vec<serde_json::Value> =
            serde_json::from_str(d["trace"].as_str().unwrap()).unwrap();
        assert_eq!(trace[0]["gate"], "schema", "{d}");
        assert!(trace.len() > 3, "{d}");
    }
    let close = decisions
        .iter()
        .find(|d| d["plan_id"] == "py-close-1")
        .unwrap();
    assert_eq!(close["action"], "FULL_CLOSE_PROPOSED");
    assert_eq!(close["verdict"], "ALLOW");

    // Events and the dead letter, with the original fields and the exact error.
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"PLAN_ALLOWED") && events.contains(&"PLAN_BLOCKED"),
        "{events:?}"
    );
    let dl = &v["deadletter"][0];
    assert_eq!(dl["plan_id"], "py-bad-1");
    assert_eq!(dl["action"], "");
    assert!(
        dl["error"].as_str().unwrap().contains("`action` = \"\""),
        "{dl}"
    );
    assert!(v["slots_desired"].as_str().is_some() && v["slots_regime"].as_str().is_some());
}

/// Looking for idle entries makes Redis scan the group's pending list, so a consumer looks at
/// most once per tenth of the idle time — except right after a look that stopped at its count,
/// when more may be waiting.
#[test]
fn idle_entries_are_looked_for_once_per_tenth_of_the_idle_time() {
    let server = RedisServer::start();
    let mut c = conn(&server);
    let streams = Streams::new(PREFIX);
    let mut hung = GroupConsumer::new(&server.url(), &streams.plans, PLAN_GROUP, "hung").unwrap();
    hung.ensure_group().unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let id: String = redis::cmd("XADD")
            .arg(&streams.plans)
            .arg("*")
            .arg(&["plan_id", &format!("idle-{i}")])
            .query(&mut c)
            .unwrap();
        ids.push(id);
    }
    assert_eq!(hung.read(10, 10).unwrap().len(), 3);
    // The hung consumer's entries have waited a minute (XCLAIM's IDLE sets their idle time).
    let make_idle = |c: &mut redis::Connection| {
        redis::cmd("XCLAIM")
            .arg(&streams.plans)
            .arg(PLAN_GROUP)
            .arg("hung")
            .arg(0)
            .arg(&ids)
            .arg("IDLE")
            .arg(60_000)
            .query::<redis::Value>(c)
            .unwrap();
    };
    make_idle(&mut c);
    let mut other = GroupConsumer::new(&server.url(), &streams.plans, PLAN_GROUP, "other").unwrap();
    let (idle_ms, period) = (5_000, Duration::from_millis(500));
    // A look that stops at its count (2) is followed by another at once.
    assert_eq!(
        other.reclaim_if_due(idle_ms, 99, 2).unwrap().claimed.len(),
        2
    );
    let last_look = Instant::now();
    assert_eq!(
        other.reclaim_if_due(idle_ms, 99, 2).unwrap().claimed.len(),
        1
    );
    // All three idle again: the next look waits for its period.
    make_idle(&mut c);
    assert!(other
        .reclaim_if_due(idle_ms, 99, 2)
        .unwrap()
        .claimed
        .is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    let claimed = loop {
        let found = other.reclaim_if_due(idle_ms, 99, 2).unwrap().claimed;
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        std::thread::yield_now();
    };
    assert_eq!(claimed.len(), 2, "the look after the period claims again");
    assert!(last_look.elapsed() >= period, "{:?}", last_look.elapsed());
}

#[test]
fn an_entry_delivered_more_than_5_times_is_dead_lettered_with_the_reason() {
    let server = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let mut c = conn(&server);
    let streams = Streams::new(PREFIX);
    let mut reader =
        GroupConsumer::new(&server.url(), &streams.plans, PLAN_GROUP, "flaky").unwrap();
    reader.ensure_group().unwrap();
    redis::cmd("XADD")
        .arg(&streams.plans)
        .arg("*")
        .arg(&[
            "plan_id",
            "poison-1",
            "symbol",
            "S01USDT",
            "action",
            "OPEN_LONG",
            "decision",
            "EXECUTE",
            "qty",
            "1",
        ])
        .query::<String>(&mut c)
        .unwrap();
    // A consumer that keeps dying: the entry is delivered again and again, never acknowledged.
    assert_eq!(reader.read(10, 10).unwrap().len(), 1);
    for _ in 0..4 {
        let again = reader.reclaim(0, 99, 10).unwrap();
        assert_eq!(again.claimed.len(), 1);
    }
    let admin = Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "admin").unwrap());
    let inputs: Arc<dyn InputsSource> = Arc::new(
        PaperMarket::load(data.path(), wall_clock(), 10_000.0, admin.clone(), 100).unwrap(),
    );
    let mut survivor = PlanWorker {
        gov: Governor::new(Arc::new(Config::default()), admin.clone()),
        views: Some(admin.clone()),
        consumer: GroupConsumer::new(&server.url(), &streams.plans, PLAN_GROUP, "survivor")
            .unwrap(),
        inputs,
        clock: wall_clock,
        name: "survivor".into(),
        reclaim_idle_ms: 0,
    };
    quantum_governor::logfmt::capture_on_this_thread();
    survivor.step(10).unwrap();
    let logged = quantum_governor::logfmt::take_captured();
    assert!(
        logged.contains("DEAD_LETTERED stream=") && logged.contains(" plan=poison-1 deliveries=5"),
        "{logged}"
    );
    let dl = admin.read_stream("stream:governor.deadletter").unwrap();
    assert_eq!(dl.len(), 1);
    let f: BTreeMap<&str, &str> = dl[0]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(f["plan_id"], "poison-1");
    assert_eq!(f["error"], "delivered 5 times without being handled");
    let decided: Option<String> = redis::cmd("GET")
        .arg(format!("{PREFIX}governor:decision:poison-1"))
        .query(&mut c)
        .unwrap();
    assert_eq!(decided, None, "dead-lettered, not decided");
    assert_eq!(pending(&mut c, PREFIX), 0);
}

/// An exchange whose positions the test sets.
struct FixedExchange(governor_core::snapshot::ExchangeState);

impl quantum_governor::exchange::Exchange for FixedExchange {
    fn account(
        &self,
    ) -> Result<governor_core::snapshot::ExchangeState, quantum_governor::exchange::ExchangeError>
    {
        Ok(self.0.clone())
    }
    fn klines(
        &self,
        _: &governor_core::types::Symbol,
        _: usize,
    ) -> Result<Vec<governor_core::market::Kline>, quantum_governor::exchange::ExchangeError> {
        unreachable!("the reconciler reads no klines")
    }
    fn filters(
        &self,
        _: &governor_core::types::Symbol,
    ) -> Result<quantum_governor::exchange::SymbolFilters, quantum_governor::exchange::ExchangeError>
    {
        unreachable!("the reconciler reads no filters")
    }
    fn place_order(
        &mut self,
        _: &quantum_governor::exchange::OrderRequest,
    ) -> Result<quantum_governor::exchange::Fill, quantum_governor::exchange::OrderError> {
        unreachable!("the reconciler places no order")
    }
    fn order_status(
        &self,
        _: &governor_core::types::Symbol,
        _: &str,
    ) -> Result<quantum_governor::exchange::OrderState, quantum_governor::exchange::ExchangeError>
    {
        Ok(quantum_governor::exchange::OrderState::Absent)
    }
}

#[test]
fn the_reconciler_adopts_unknown_positions_and_releases_phantoms_on_redis() {
    use governor_core::book::LedgerPosition;
    use governor_core::snapshot::{ExchangePosition, ExchangeState};
    use governor_core::types::Side;
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url(), PREFIX, 3600, "reconciler").unwrap();
    let now = wall_clock();
    let phantom = LedgerPosition {
        side: Side::Long,
        qty: 2.0,
        entry_price: 10.0,
        leverage: 5,
        opened_at: now,
        entry_score: Some(70.0),
        entry_fees: 0.0,
    };
    store
        .put_ledger_position(&sym("S01USDT"), &phantom)
        .unwrap();
    let live = ExchangePosition {
        side: Side::Short,
        qty: 3.0,
        entry_price: 20.0,
        mark_price: 19.0,
        leverage: 3,
    };
    let exchange = FixedExchange(ExchangeState {
        equity_usdt: 1000.0,
        positions: [(sym("S02USDT"), live)].into(),
        clock: governor_core::snapshot::ExchangeClock::Local,
    });
    let cfg = governor_core::Config::default();
    let drifts = quantum_governor::service::reconcile::reconcile_once(&store, &exchange, &cfg, now)
        .unwrap()
        .applied;
    assert_eq!(drifts.len(), 2, "{drifts:?}");
    let ledger = store.ledger(now).unwrap();
    assert!(
        !ledger.contains_key(&sym("S01USDT")),
        "the phantom is released"
    );
    let adopted = &ledger[&sym("S02USDT")];
    assert_eq!(
        (adopted.side, adopted.qty, adopted.leverage),
        (Side::Short, 3.0, 3)
    );
    let mut c = conn(&server);
    let slots: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{PREFIX}governor:slots"))
        .query(&mut c)
        .unwrap();
    assert_eq!(
        slots.into_iter().collect::<Vec<_>>(),
        vec![("S02USDT".to_owned(), "SHORT".to_owned())],
        "the adopted position holds a slot"
    );
    let events = store.read_stream("stream:governor.events").unwrap();
    let drift_events = events
        .iter()
        .filter(|e| {
            e.iter()
                .any(|(k, v)| k == "event" && v == "RECONCILE_DRIFT")
        })
        .count();
    assert_eq!(drift_events, 2);
    assert!(
        quantum_governor::service::reconcile::reconcile_once(&store, &exchange, &cfg, now)
            .unwrap()
            .applied
            .is_empty(),
        "nothing drifts twice"
    );
}

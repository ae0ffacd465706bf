//! The service on a real Redis Cluster (3 masters, 3 replicas, started by the test): accounts
//! in their own hash slots, served side by side, each holding its limits, with no script ever
//! touching two slots.

mod support;

use governor_core::effects::Permit;
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Symbol};
use quantum_governor::store::redis::RedisStore;
use quantum_governor::store::{StateStore, StoreError};
use redis::Commands;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::race::*;
use support::redis_cluster::RedisCluster;

/// Key prefixes of `n` accounts whose hash slots are served by `n` different masters.
fn accounts_on_distinct_masters(cluster: &RedisCluster, n: usize) -> Vec<(String, u16)> {
    let mut masters = BTreeSet::new();
    let mut out = Vec::new();
    for i in 0.. {
        let prefix = format!("quantum:{{acct{i}}}:");
        let master = cluster.master_of(&prefix);
        if masters.insert(master) {
            out.push((prefix, master));
            if out.len() == n {
                return out;
            }
        }
    }
    unreachable!()
}

fn node_conn(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// How many times the node on `port` answered an error with `code` (`INFO errorstats`).
fn error_count(port: u16, code: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut node_conn(port))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("errorstat_{code}:count=")))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn a_key_prefix_without_a_hash_tag_is_refused_on_a_cluster() {
    let cluster = RedisCluster::start();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let mut child = support::governor_command()
        .args(["serve", "--redis", &cluster.url(), "--data"])
        .arg(data.path())
        .env("GOV_KEY_PREFIX", "quantum:")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running on a cluster with a prefix without a hash tag");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("key_prefix \"quantum:\"") && stderr.contains("hash tag"),
        "{stderr}"
    );
    // Nothing was written: the refusal comes before the first key.
    for port in cluster.live_ports() {
        let keys: usize = redis::cmd("DBSIZE").query(&mut node_conn(port)).unwrap();
        assert_eq!(keys, 0, "node {port} holds keys");
    }
}

/// Three accounts on three masters, three governor processes each (one given every node's
/// URL, the others one node to discover the cluster from), plans of all three flowing at once:
/// every account holds its own 4-slot limit at every sampled moment, every plan is decided
/// once with at most one permit, every key lives in its account's slot, and no node ever
/// answered CROSSSLOT.
#[test]
fn three_accounts_race_on_a_cluster_each_within_its_limit() {
    const N: usize = 2_000;
    let cluster = RedisCluster::start();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    let accounts = accounts_on_distinct_masters(&cluster, 3);
    let marks = marks(
        data.path(),
        Arc::new(RedisStore::open(&cluster.url(), &accounts[0].0, 3600, "admin").unwrap()),
    );
    let every_node = cluster
        .live_ports()
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect::<Vec<_>>()
        .join(",");
    let stop = Arc::new(AtomicBool::new(false));
    let mut watchers = Vec::new();
    let mut executors = Vec::new();
    let mut procs = Vec::new();
    for (a, (prefix, master)) in accounts.iter().enumerate() {
        let mut c = node_conn(*master);
        set_race_universe(&mut c, prefix);
        publish_opens(&mut c, prefix, 0..N, &marks);
        let url = format!("redis://127.0.0.1:{master}/");
        watchers.push(watcher(url.clone(), prefix.clone(), stop.clone()));
        let filled = Arc::new(AtomicUsize::new(0));
        executors.push(executor(url, prefix.clone(), stop.clone(), filled));
        let mut env = racing_env();
        env.push(("GOV_KEY_PREFIX", prefix.as_str()));
        for g in 0..3 {
            let redis = if g == 0 {
                every_node.clone()
            } else {
                cluster.url()
            };
            procs.push(serve(&redis, data.path(), &format!("a{a}-g{g}"), &env));
        }
    }
    for (prefix, master) in &accounts {
        wait_for_decisions(&mut node_conn(*master), prefix, N, Duration::from_secs(120));
        wait_for_acks(&mut node_conn(*master), prefix, Duration::from_secs(60));
    }
    stop.store(true, Ordering::Relaxed);
    drop(procs);
    for e in executors {
        e.join().unwrap();
    }
    for ((prefix, master), w) in accounts.iter().zip(watchers) {
        let (max_slots, samples) = w.join().unwrap();
        assert!(samples > 100, "{prefix}: {samples} samples");
        assert!(
            max_slots <= 4,
            "{prefix}: {max_slots} slots occupied at once"
        );
        assert_eq!(max_slots, 4, "{prefix}: the slots never filled");
        check_final_record(&mut node_conn(*master), prefix, N);
        // Every key of the master is in this account's slot: nothing strayed.
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(prefix)
            .query(&mut node_conn(*master))
            .unwrap();
        let in_slot: usize = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query(&mut node_conn(*master))
            .unwrap();
        let all: usize = redis::cmd("DBSIZE").query(&mut node_conn(*master)).unwrap();
        assert_eq!(in_slot, all, "{prefix}: keys outside slot {slot}");
    }
    for port in cluster.live_ports() {
        assert_eq!(error_count(port, "CROSSSLOT"), 0, "node {port}");
    }
}

/// `plans export` reads an account's plan stream on a cluster too.
#[test]
fn plans_are_exported_from_a_cluster() {
    let cluster = RedisCluster::start();
    let (prefix, master) = accounts_on_distinct_masters(&cluster, 1).remove(0);
    let mut c = node_conn(master);
    for i in 0..3 {
        redis::cmd("XADD")
            .arg(format!("{prefix}stream:apply.plan"))
            .arg("*")
            .arg(&["plan_id", &format!("p{i}"), "symbol", "BTCUSDT"])
            .query::<String>(&mut c)
            .unwrap();
    }
    let done = support::governor_command()
        .args(["plans", "export", "--redis", &cluster.url()])
        .env("GOV_KEY_PREFIX", &prefix)
        .output()
        .unwrap();
    let lines = support::succeeded(done);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.contains("\"p2\""), "{lines}");
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn permit(plan: &str, expires_at: Timestamp) -> Permit {
    Permit {
        plan_id: PlanId::parse(plan).unwrap(),
        symbol: Symbol::parse("BTCUSDT").unwrap(),
        action: "OPEN_LONG".to_owned(),
        qty: 0.01,
        notional: 1_000.0,
        regime: None,
        fence: 7,
        granted_at: Timestamp(expires_at.millis() - 60_000),
        expires_at,
    }
}

/// A permit is used only once a replica holds its take: with the master's replica paused
/// (SIGSTOP, a stalled machine), the take is refused as not replicated and the permit put back
/// unused, with its own expiry; once the replica runs again the same permit is taken. On one
/// server, with no replica to wait for, the take is immediate.
#[test]
fn a_permit_is_used_only_once_a_replica_holds_its_take() {
    let cluster = RedisCluster::start();
    let (prefix, master) = accounts_on_distinct_masters(&cluster, 1).remove(0);
    let store = RedisStore::open(&cluster.url(), &prefix, 3600, "executor")
        .unwrap()
        .with_permit_replicas(1);
    let now = quantum_governor::clock::wall_clock();
    let expires = Timestamp(now.millis() + 60_000);
    let key = format!("{prefix}permit:p-1");
    let mut c = node_conn(master);
    redis::cmd("SET")
        .arg(&key)
        .arg(serde_json::to_string(&permit("p-1", expires)).unwrap())
        .arg("PXAT")
        .arg(expires.millis())
        .query::<()>(&mut c)
        .unwrap();
    let replica = cluster.replica_of(master);
    let replica_pid = cluster.node(replica).pid();
    signal(replica_pid, "-STOP");
    let paused = store.take_permit(&PlanId::parse("p-1").unwrap(), now);
    signal(replica_pid, "-CONT");
    match paused {
        Err(StoreError::NotReplicated(why)) => assert!(why.contains("p-1"), "{why}"),
        other => panic!("taken while no replica could confirm it: {other:?}"),
    }
    let back: Option<String> = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
    assert!(back.is_some(), "the permit was not put back");
    let expiry: i64 = redis::cmd("PEXPIRETIME").arg(&key).query(&mut c).unwrap();
    assert_eq!(expiry, expires.millis(), "put back with another expiry");
    cluster.await_healthy(Duration::from_secs(30));
    let taken = store
        .take_permit(&PlanId::parse("p-1").unwrap(), now)
        .unwrap();
    assert_eq!(taken, Some(permit("p-1", expires)));
    let gone: Option<String> = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
    assert_eq!(gone, None, "the permit is used once");

    let single = support::redis_server::RedisServer::start();
    let store = RedisStore::open(&single.url(), "quantum:", 3600, "executor")
        .unwrap()
        .with_permit_replicas(1);
    redis::Client::open(single.url())
        .unwrap()
        .get_connection()
        .unwrap()
        .set::<_, _, ()>(
            "quantum:permit:p-2",
            serde_json::to_string(&permit("p-2", expires)).unwrap(),
        )
        .unwrap();
    let taken = store.take_permit(&PlanId::parse("p-2").unwrap(), now);
    assert_eq!(taken, Ok(Some(permit("p-2", expires))));
}

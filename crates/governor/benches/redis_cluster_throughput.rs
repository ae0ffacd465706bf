//! Aggregate decisions per second on a Redis Cluster (3 masters, 3 replicas, all on this
//! machine) for 1, 2 and 3 accounts — each account on its own master, one governor worker per
//! account — next to one account on one redis-server with one worker, measured in the same run
//! (the reference right before and right after the cluster's runs: the machine's speed
//! drifts). Each account decides a backlog of the same open plans; every worker is the
//! service's own plan worker (consumer group read, one state read per batch, one commit script
//! per batch, acknowledgement).
//! Run: `cargo bench -p quantum-governor --bench redis_cluster_throughput` (needs redis-server
//! and redis-cli: `scripts/install-test-deps`).

#[path = "../tests/support/mod.rs"]
mod support;

use governor_core::Config;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::paper_market::PaperMarket;
use quantum_governor::inputs::InputsSource;
use quantum_governor::service::workers::PlanWorker;
use quantum_governor::store::redis::RedisStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use support::race::{marks, publish_opens, set_race_universe, write_data};
use support::redis_cluster::RedisCluster;
use support::redis_server::RedisServer;

/// Plans per account.
const PLANS: usize = 10_000;

/// One account to decide: where its Redis is, its key prefix, and a connection to the node
/// holding its keys (to publish its plans).
struct Account {
    url: String,
    prefix: String,
    node: redis::Connection,
}

fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Publishes PLANS plans for each account, then decides them all with one worker per account;
/// the aggregate decisions per second.
fn decide_all(accounts: &mut [Account], data: &Path) -> f64 {
    let marks = marks(
        data,
        Arc::new(RedisStore::open(&accounts[0].url, &accounts[0].prefix, 3600, "admin").unwrap()),
    );
    let mut workers = Vec::new();
    for (i, a) in accounts.iter_mut().enumerate() {
        set_race_universe(&mut a.node, &a.prefix);
        publish_opens(&mut a.node, &a.prefix, 0..PLANS, &marks);
        let cfg = Arc::new(Config {
            key_prefix: a.prefix.clone(),
            ..Config::default()
        });
        let store = Arc::new(RedisStore::open(&a.url, &a.prefix, 3600, "market").unwrap());
        let inputs: Arc<dyn InputsSource> =
            Arc::new(PaperMarket::load(data, wall_clock(), 10_000.0, store, 100).unwrap());
        workers.push(PlanWorker::connect(&a.url, cfg, inputs, &format!("w{i}"), 30_000).unwrap());
    }
    let started = Instant::now();
    let threads: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            std::thread::spawn(move || {
                let mut decided = 0;
                while decided < PLANS {
                    decided += w.step(2).unwrap().acked;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (PLANS * accounts.len()) as f64 / started.elapsed().as_secs_f64()
}

/// One account on one redis-server: the reference.
fn one_server(data: &Path) -> f64 {
    let server = RedisServer::start();
    let mut accounts = [Account {
        url: server.url(),
        prefix: "quantum:".to_owned(),
        node: node(server.port),
    }];
    decide_all(&mut accounts, data)
}

/// `n` accounts on a fresh cluster, each on a master of its own.
fn on_cluster(n: usize, data: &Path) -> f64 {
    let cluster = RedisCluster::start();
    let mut accounts: Vec<Account> = cluster
        .accounts_on_distinct_masters(n)
        .into_iter()
        .map(|(prefix, master)| Account {
            url: cluster.url(),
            prefix,
            node: node(master),
        })
        .collect();
    decide_all(&mut accounts, data)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probing: nothing to list
    }
    let _flush_log_at_the_end = quantum_governor::logfmt::write_in_background();
    let data = tempfile::tempdir().unwrap();
    write_data(data.path());
    // A first run warms up the page cache and the allocator.
    let _warm_up = one_server(data.path());
    let before = one_server(data.path());
    let cluster: Vec<f64> = (1..=3).map(|n| on_cluster(n, data.path())).collect();
    let after = one_server(data.path());
    let reference = (before + after) / 2.0;
    println!(
        "one account on one server: {reference:.0} decisions/s (before {before:.0}, after {after:.0})"
    );
    for (n, rate) in cluster.iter().enumerate() {
        println!(
            "{} account(s) on the cluster: {rate:.0} decisions/s aggregate; ratio to one account on one server {:.2}",
            n + 1,
            rate / reference
        );
    }
}

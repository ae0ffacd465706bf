//! End-to-end decisions per second through Redis — consumer group read, snapshot script,
//! pure decision, commit script, acknowledgement — for one and two governor instances, next to
//! `redis-benchmark` running a Lua script of comparable work on this machine, so the result is
//! read as a share of the machine's ceiling.
//! Run: `cargo bench -p quantum-governor --bench redis_throughput` (needs redis-server and
//! redis-benchmark: `scripts/install-test-deps`).

#[path = "../tests/support/mod.rs"]
mod support;

use governor_core::Config;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::paper_market::PaperMarket;
use quantum_governor::inputs::InputsSource;
use quantum_governor::service::workers::PlanWorker;
use quantum_governor::store::redis::RedisStore;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use support::redis_server::RedisServer;

const PREFIX: &str = "quantum:";
const PLANS: usize = 40_000;

/// Guards and writes of the size of one decision's commit: 5 reads, 7 writes.
const COMPARABLE_LUA: &str = "local p='bench:' \
    local a=redis.call('EXISTS',p..'d:'..ARGV[1]) local b=redis.call('GET',p..'kill') \
    local c=redis.call('HLEN',p..'slots') local d=redis.call('ZCOUNT',p..'opens','-inf','+inf') \
    local e=redis.call('HGET',p..'cool','X') local f=redis.call('INCR',p..'fence') \
    redis.call('SET',p..'d:'..ARGV[1],'x','EX',600) redis.call('SET',p..'permit','x','PX',60000) \
    redis.call('HSET',p..'res',ARGV[1],'x') redis.call('ZADD',p..'opens',f,ARGV[1]) \
    redis.call('HSET',p..'cool','X',f) redis.call('XADD',p..'s','MAXLEN','~',1000,'*','k','v') return f";

fn run(instances: usize) -> f64 {
    let server = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let names = support::write_thirty_symbols(data.path());
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("HSET")
        .arg(format!("{PREFIX}policy:current"))
        .arg("universe_symbols")
        .arg(serde_json::to_string(&names).unwrap())
        .query::<()>(&mut c)
        .unwrap();
    let admin = Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "admin").unwrap());
    let inputs: Arc<dyn InputsSource> =
        Arc::new(PaperMarket::load(data.path(), wall_clock(), 10_000.0, admin, 100).unwrap());
    let marks = inputs.inputs(wall_clock()).market;
    let mut pipe = redis::pipe();
    for i in 0..PLANS {
        let s = &names[1 + i % 30];
        let qty = (100.0 / marks[&governor_core::types::Symbol::parse(s).unwrap()].last_close)
            .to_string();
        pipe.cmd("XADD")
            .arg(format!("{PREFIX}stream:apply.plan"))
            .arg("*")
            .arg(&[
                "plan_id",
                &format!("b-{i}"),
                "symbol",
                s,
                "action",
                "OPEN_LONG",
                "decision",
                "EXECUTE",
                "qty",
                &qty,
                "score",
                "60",
            ])
            .ignore();
    }
    pipe.query::<()>(&mut c).unwrap();
    let cfg = Arc::new(Config::default());
    let started = Instant::now();
    let handles: Vec<_> = (0..instances)
        .map(|i| {
            let mut worker = PlanWorker::connect(
                &server.url(),
                cfg.clone(),
                inputs.clone(),
                &format!("g{i}"),
                30_000,
            )
            .unwrap();
            std::thread::spawn(move || {
                let mut done = 0;
                loop {
                    let n = worker.step(1).unwrap();
                    if n.acked == 0 {
                        return done;
                    }
                    done += n.acked;
                }
            })
        })
        .collect();
    let decided: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(decided, PLANS);
    PLANS as f64 / secs
}

fn redis_benchmark(clients: usize) -> Option<f64> {
    let server = RedisServer::start();
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &server.port.to_string(),
            "-n",
            "100000",
            "-c",
            &clients.to_string(),
            "-q",
        ])
        .args(["EVAL", COMPARABLE_LUA, "0", "__rand_int__"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "EVAL ...: 23456.78 requests per second, p50=..." (the last figure before "requests").
    let before = text.split(" requests per second").next()?;
    before.rsplit([' ', '\r']).next()?.trim().parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probing: nothing to list
    }
    // A first run warms up the page cache and the allocator; the figures are from the next.
    let _ = run(1);
    for instances in [1, 2] {
        let rate = run(instances);
        let ceiling = redis_benchmark(instances);
        match ceiling {
            Some(c) => println!(
                "{instances} instance(s): {rate:.0} decisions/s; redis-benchmark comparable EVAL with {instances} client(s): {c:.0}/s; ratio {:.2}",
                rate / c
            ),
            None => println!("{instances} instance(s): {rate:.0} decisions/s; redis-benchmark not available"),
        }
    }
}

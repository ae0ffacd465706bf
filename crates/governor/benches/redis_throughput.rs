//! End-to-end decisions per second through Redis — consumer group read, one state read per
//! batch, pure decisions, one commit script per batch, acknowledgement — for one and two
//! governor instances, next to `redis-benchmark` running a Lua script of comparable work with
//! as many clients, measured right before and right after the governors' run (the machine's
//! speed drifts), so the result is read as a share of the machine's ceiling; the CPU time per
//! decision of the governor process and of redis-server (where the time goes); and the
//! latency from a plan's XADD to its decision (both stream ids, so one clock: Redis's), at
//! saturation (a backlog of 40,000 plans) and at a fixed offered load of 1,000 plans/s.
//! Logging stays on, as in production: one logfmt line per decision, written by the
//! background log writer.
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
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

const PREFIX: &str = "quantum:";
const PLANS: usize = 40_000;
/// The fixed offered load, and for how long.
const PACED_PER_SEC: usize = 1_000;
const PACED_SECS: usize = 10;

/// Guards and writes of the size of one decision's commit: 5 reads, 7 writes.
const COMPARABLE_LUA: &str = "local p='bench:' \
    local a=redis.call('EXISTS',p..'d:'..ARGV[1]) local b=redis.call('GET',p..'kill') \
    local c=redis.call('HLEN',p..'slots') local d=redis.call('ZCOUNT',p..'opens','-inf','+inf') \
    local e=redis.call('HGET',p..'cool','X') local f=redis.call('INCR',p..'fence') \
    redis.call('SET',p..'d:'..ARGV[1],'x','EX',600) redis.call('SET',p..'permit','x','PX',60000) \
    redis.call('HSET',p..'res',ARGV[1],'x') redis.call('ZADD',p..'opens',f,ARGV[1]) \
    redis.call('HSET',p..'cool','X',f) redis.call('XADD',p..'s','MAXLEN','~',1000,'*','k','v') return f";

/// One blocked decision as one script, with the bytes a decision of this run wrote (a second
/// reference, printed beside the first): its guard, its record, its block, its decision entry
/// and its event. ARGV: a random id, the record, the block, the number of the decision entry's
/// arguments, its names and values, then the event's. COMPARABLE_LUA writes about 100 bytes
/// per call where a decision writes about 4.5 KB (its trace twice: record and stream entry).
const SAME_BYTES_LUA: &str = "local id=ARGV[1] \
    if redis.call('EXISTS','r:d:'..id)==1 then return 0 end \
    redis.call('SET','r:d:'..id,ARGV[2],'EX',604800) redis.call('SET','r:b:'..id,ARGV[3],'EX',3600) \
    local n=tonumber(ARGV[4]) \
    redis.call('XADD','r:decisions','MAXLEN','~',100000,'*',unpack(ARGV,5,4+n)) \
    redis.call('XADD','r:events','MAXLEN','~',100000,'*',unpack(ARGV,5+n,#ARGV)) return 1";

/// A redis-server with the bench's policy, and the paper market's inputs over 30 symbols.
struct Bench {
    server: RedisServer,
    _data: tempfile::TempDir,
    names: Vec<String>,
    inputs: Arc<dyn InputsSource>,
    conn: redis::Connection,
}

impl Bench {
    fn start() -> Bench {
        let server = RedisServer::start();
        let data = tempfile::tempdir().unwrap();
        let names = support::write_thirty_symbols(data.path());
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("HSET")
            .arg(format!("{PREFIX}policy:current"))
            .arg("universe_symbols")
            .arg(serde_json::to_string(&names).unwrap())
            .query::<()>(&mut conn)
            .unwrap();
        let admin = Arc::new(RedisStore::open(&server.url(), PREFIX, 3600, "admin").unwrap());
        let inputs: Arc<dyn InputsSource> =
            Arc::new(PaperMarket::load(data.path(), wall_clock(), 10_000.0, admin, 100).unwrap());
        Bench {
            server,
            _data: data,
            names,
            inputs,
            conn,
        }
    }

    /// Publishes plans `from..to` in one pipeline.
    fn publish(&mut self, from: usize, to: usize) {
        let marks = self.inputs.inputs(wall_clock()).market;
        let mut pipe = redis::pipe();
        for i in from..to {
            let s = &self.names[1 + i % 30];
            let mark = marks[&governor_core::types::Symbol::parse(s).unwrap()].last_close;
            let qty = (100.0 / mark).to_string();
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
        pipe.query::<()>(&mut self.conn).unwrap();
    }

    /// Governor workers that step until `target` plans are decided in all.
    fn governors(&self, instances: usize, target: usize) -> Vec<std::thread::JoinHandle<()>> {
        let cfg = Arc::new(Config::default());
        let decided = Arc::new(AtomicUsize::new(0));
        (0..instances)
            .map(|i| {
                let mut worker = PlanWorker::connect(
                    &self.server.url(),
                    cfg.clone(),
                    self.inputs.clone(),
                    &format!("g{i}"),
                    30_000,
                )
                .unwrap();
                let decided = decided.clone();
                std::thread::spawn(move || {
                    while decided.load(Ordering::SeqCst) < target {
                        let n = worker.step(2).unwrap();
                        decided.fetch_add(n.acked, Ordering::SeqCst);
                    }
                })
            })
            .collect()
    }

    /// [`SAME_BYTES_LUA`]'s arguments with what the last decision wrote: its record, its block
    /// (a blocked plan: nearly every plan of the run), its decision entry and its event.
    fn last_decision_bytes(&mut self) -> Vec<String> {
        let last = |conn: &mut redis::Connection, stream: &str| -> Vec<String> {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(format!("{PREFIX}{stream}"))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(conn)
                .unwrap();
            let entry = &reply.ids[0];
            let mut fields: Vec<(&String, &redis::Value)> = entry.map.iter().collect();
            fields.sort_by_key(|(k, _)| *k);
            fields
                .into_iter()
                .flat_map(|(k, v)| [k.clone(), redis::from_redis_value(v).unwrap()])
                .collect()
        };
        let decision = last(&mut self.conn, "stream:governor.decisions");
        let plan_id = decision[decision.iter().position(|k| k == "plan_id").unwrap() + 1].clone();
        let get = |conn: &mut redis::Connection, key: String| -> String {
            redis::cmd("GET").arg(key).query(conn).unwrap()
        };
        let record = get(
            &mut self.conn,
            format!("{PREFIX}governor:decision:{plan_id}"),
        );
        let block = get(&mut self.conn, format!("{PREFIX}governor:block:{plan_id}"));
        let event = last(&mut self.conn, "stream:governor.events");
        let mut args = vec![
            "__rand_int__".to_owned(),
            record,
            block,
            decision.len().to_string(),
        ];
        args.extend(decision);
        args.extend(event);
        args
    }

    /// Milliseconds from each plan's XADD to its decision's entry, sorted.
    fn latencies(&mut self) -> Vec<u64> {
        let ms_of = |id: &str| id.split('-').next().unwrap().parse::<u64>().unwrap();
        let read = |conn: &mut redis::Connection, stream: &str| -> HashMap<String, u64> {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(format!("{PREFIX}{stream}"))
                .arg("-")
                .arg("+")
                .query(conn)
                .unwrap();
            reply
                .ids
                .iter()
                .map(|e| (e.get::<String>("plan_id").unwrap(), ms_of(&e.id)))
                .collect()
        };
        let published = read(&mut self.conn, "stream:apply.plan");
        let decided = read(&mut self.conn, "stream:governor.decisions");
        let mut out: Vec<u64> = published
            .iter()
            .map(|(id, at)| decided[id].saturating_sub(*at))
            .collect();
        out.sort_unstable();
        out
    }
}

/// p50 / p99 / max of sorted latencies, in ms.
fn percentiles(sorted: &[u64]) -> String {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {} ms, p99 {} ms, max {} ms",
        at(0.5),
        at(0.99),
        sorted[sorted.len() - 1]
    )
}

/// What one saturated run measured.
struct Saturated {
    /// Decisions per second.
    rate: f64,
    /// XADD-to-decision latency percentiles.
    latency: String,
    /// CPU time per decision of this process (the governors and their log writer), in µs.
    governor_cpu_us: f64,
    /// CPU time per decision of the redis-server, in µs.
    redis_cpu_us: f64,
    /// Where redis-server's time went: its busiest commands, µs per decision each.
    redis_commands: String,
    /// The arguments of [`SAME_BYTES_LUA`] with the bytes of this run's last decision.
    same_bytes_args: Vec<String>,
}

/// This process's CPU time (user + system) in seconds, from `/proc/self/stat` (Linux).
fn own_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| after_name[i].parse::<f64>().unwrap();
    (ticks(11) + ticks(12)) / 100.0 // utime and stime, in clock ticks of 10 ms
}

/// The redis-server's CPU time (user + system) in seconds, from `INFO cpu`.
fn redis_cpu_secs(conn: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(conn).unwrap();
    info.lines()
        .filter(|l| l.starts_with("used_cpu_user:") || l.starts_with("used_cpu_sys:"))
        .map(|l| l.split(':').nth(1).unwrap().trim().parse::<f64>().unwrap())
        .sum()
}

/// The `n` commands redis-server spent the most time in since the last `CONFIG RESETSTAT`
/// (commands run by scripts are counted too, and inside their script's time), with their
/// µs per decision and calls per decision, from `INFO commandstats`.
fn busiest_commands(conn: &mut redis::Connection, n: usize) -> String {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    // "cmdstat_get:calls=4,usec=12,usec_per_call=3.00,..."
    let mut rows: Vec<(String, f64, f64)> = info
        .lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let stat = |key: &str| -> Option<f64> {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            Some((name.to_string(), stat("usec")?, stat("calls")?))
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let per = |x: f64| x / PLANS as f64;
    rows.iter()
        .take(n)
        .map(|(name, usec, calls)| {
            format!("{name} {:.1} µs ({:.2} calls)", per(*usec), per(*calls))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Saturation: a backlog of PLANS decided as fast as the governors can. Decisions/s, the
/// latency percentiles, and where the time went: CPU per decision on each side.
fn saturated(instances: usize) -> Saturated {
    let mut bench = Bench::start();
    bench.publish(0, PLANS);
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(&mut bench.conn)
        .unwrap();
    let (own_before, redis_before) = (own_cpu_secs(), redis_cpu_secs(&mut bench.conn));
    let started = Instant::now();
    for h in bench.governors(instances, PLANS) {
        h.join().unwrap();
    }
    let rate = PLANS as f64 / started.elapsed().as_secs_f64();
    let per_decision_us = |secs: f64| secs * 1e6 / PLANS as f64;
    let governor_cpu_us = per_decision_us(own_cpu_secs() - own_before);
    let redis_cpu_us = per_decision_us(redis_cpu_secs(&mut bench.conn) - redis_before);
    let redis_commands = busiest_commands(&mut bench.conn, 8);
    let latencies = bench.latencies();
    assert_eq!(latencies.len(), PLANS, "every plan decided");
    let same_bytes_args = bench.last_decision_bytes();
    Saturated {
        rate,
        latency: percentiles(&latencies),
        governor_cpu_us,
        redis_cpu_us,
        redis_commands,
        same_bytes_args,
    }
}

/// A fixed offered load: PACED_PER_SEC plans a second for PACED_SECS, in 10 ms slices.
fn paced(instances: usize) -> String {
    let mut bench = Bench::start();
    let total = PACED_PER_SEC * PACED_SECS;
    let governors = bench.governors(instances, total);
    let per_slice = PACED_PER_SEC / 100;
    let started = Instant::now();
    for slice in 0..total / per_slice {
        let due = started + Duration::from_millis(slice as u64 * 10);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        bench.publish(slice * per_slice, (slice + 1) * per_slice);
    }
    for h in governors {
        h.join().unwrap();
    }
    let latencies = bench.latencies();
    assert_eq!(latencies.len(), total, "every plan decided");
    percentiles(&latencies)
}

/// A script for `redis-benchmark` to call, and how.
struct Reference<'a> {
    script: &'a str,
    /// After the script and its number of keys (0).
    args: Vec<String>,
    /// Whether `__rand_int__` in the arguments is replaced by a random number on each call
    /// (`-r`); the first reference has always run without it (one key, rewritten).
    random: bool,
}

/// The first reference, as it has always been measured.
fn comparable() -> Reference<'static> {
    Reference {
        script: COMPARABLE_LUA,
        args: vec!["__rand_int__".to_owned()],
        random: false,
    }
}

/// `redis-benchmark`'s calls per second of `reference` by `clients` clients, on a server of
/// its own; none when it is not installed or its output cannot be read.
fn redis_benchmark(clients: usize, reference: &Reference) -> Option<f64> {
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
        .args(if reference.random {
            &["-r", "1000000000"][..]
        } else {
            &[]
        })
        .args(["EVAL", reference.script, "0"])
        .args(&reference.args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "EVAL ...: 23456.78 requests per second, p50=..." (the last figure before "requests").
    let before = text.split(" requests per second").next()?;
    before.rsplit([' ', '\r']).next()?.trim().parse().ok()
}

/// The mean of a reference measured before and after a run, with both, when both ran.
fn around(before: Option<f64>, after: Option<f64>) -> Option<(f64, f64, f64)> {
    Some(((before? + after?) / 2.0, before?, after?))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probing: nothing to list
    }
    let _flush_log_at_the_end = quantum_governor::logfmt::write_in_background();
    // A first run warms up the page cache and the allocator; the figures are from the next.
    // Its last decision gives the second reference its bytes.
    let same_bytes = Reference {
        script: SAME_BYTES_LUA,
        args: saturated(1).same_bytes_args,
        random: true,
    };
    for instances in [1, 2] {
        // The machine's speed drifts: the references are measured right before and right
        // after the governors' run, and their means are the ceilings.
        let before = redis_benchmark(instances, &comparable());
        let before_same = redis_benchmark(instances, &same_bytes);
        let run = saturated(instances);
        let after = redis_benchmark(instances, &comparable());
        let after_same = redis_benchmark(instances, &same_bytes);
        let Saturated {
            rate,
            latency,
            governor_cpu_us,
            redis_cpu_us,
            redis_commands,
            ..
        } = run;
        let cpu = format!(
            "CPU per decision: governor process {governor_cpu_us:.1} µs, redis-server {redis_cpu_us:.1} µs (commands: {redis_commands})"
        );
        match around(before, after) {
            Some((c, b, a)) => println!(
                "{instances} instance(s): {rate:.0} decisions/s; redis-benchmark comparable EVAL with {instances} client(s): {c:.0}/s (before {b:.0}, after {a:.0}); ratio {:.2}; latency at saturation {latency}; {cpu}",
                rate / c
            ),
            None => println!("{instances} instance(s): {rate:.0} decisions/s; redis-benchmark not available; latency at saturation {latency}; {cpu}"),
        }
        if let Some((c, b, a)) = around(before_same, after_same) {
            println!(
                "{instances} instance(s): same-bytes single-decision EVAL with {instances} client(s): {c:.0}/s (before {b:.0}, after {a:.0}); ratio {:.2}",
                rate / c
            );
        }
        println!(
            "{instances} instance(s) at {PACED_PER_SEC} plans/s offered for {PACED_SECS} s: latency {}",
            paced(instances)
        );
    }
}

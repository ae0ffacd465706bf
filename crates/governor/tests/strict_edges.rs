//! Nothing slips through on the stream: field names and values that are not UTF-8, duplicated
//! fields and near misses of contract fields are refused naming the field and dead-lettered,
//! against a real redis-server and the governor's own plan worker — never decided on a
//! dropped or defaulted value.

mod support;

use governor_core::Config;
use quantum_governor::service::paper_market::PaperMarket;
use quantum_governor::service::wall_clock;
use quantum_governor::service::workers::PlanWorker;
use quantum_governor::store::redis::RedisStore;
use quantum_governor::store::StateStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::redis_server::RedisServer;

const STREAM: &str = "quantum:stream:apply.plan";

struct Stream {
    server: RedisServer,
    worker: PlanWorker,
    conn: redis::Connection,
}

impl Stream {
    fn new() -> Stream {
        let server = RedisServer::start();
        let store = Arc::new(RedisStore::open(&server.url(), "quantum:", 3600, "t").unwrap());
        let data =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/klines"));
        let market =
            Arc::new(PaperMarket::load(&data, wall_clock(), 13_661.0, store, 100).unwrap());
        support::set_universe(&server.url(), &["ETHUSDT", "SOLUSDT"]);
        let mut cfg = Config::default();
        cfg.correlation.max = 1.0;
        let worker =
            PlanWorker::connect(&server.url(), Arc::new(cfg), market, "strict", 30_000).unwrap();
        let conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        Stream {
            server,
            worker,
            conn,
        }
    }

    /// Publishes raw bytes as an entry and lets the worker handle it.
    fn publish(&mut self, fields: &[(&[u8], &[u8])]) {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(STREAM).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd.query::<String>(&mut self.conn).unwrap();
        let counts = self.worker.step(10).unwrap();
        assert_eq!(counts.acked, 1, "the entry is handled and acknowledged");
    }

    fn store(&self) -> RedisStore {
        RedisStore::open(&self.server.url(), "quantum:", 3600, "reader").unwrap()
    }

    fn dead_letters(&self) -> Vec<BTreeMap<String, String>> {
        self.store()
            .read_stream("stream:governor.deadletter")
            .unwrap()
            .into_iter()
            .map(|f| f.into_iter().collect())
            .collect()
    }

    fn verdict(&self, plan_id: &str) -> Option<String> {
        let id = governor_core::types::PlanId::parse(plan_id).unwrap();
        self.store()
            .decision(&id)
            .unwrap()
            .map(|d| d.reason.map_or("allow".to_owned(), |r| r.code().to_owned()))
    }
}

fn open(id: &'static str) -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"plan_id", id.as_bytes()),
        (b"symbol", b"ETHUSDT"),
        (b"action", b"OPEN_LONG"),
        (b"decision", b"EXECUTE"),
        (b"qty", b"0.04"),
    ]
}

#[test]
fn a_readable_critical_kill_score_blocks_so_an_unreadable_one_must_not_vanish() {
    let mut s = Stream::new();
    let mut readable = open("ks-readable");
    readable.push((b"kill_score", b"0.99"));
    s.publish(&readable);
    assert_eq!(
        s.verdict("ks-readable").as_deref(),
        Some("kill_score_critical")
    );

    let mut bad = open("ks-bytes");
    bad.push((b"kill_score", b"0.99\xff"));
    s.publish(&bad);
    assert_eq!(s.verdict("ks-bytes"), None, "not decided");
    let dl = s.dead_letters();
    assert_eq!(dl.len(), 1);
    assert!(
        dl[0]["error"].contains("`kill_score`") && dl[0]["error"].contains("not valid UTF-8"),
        "{:?}",
        dl[0]
    );
    assert_eq!(dl[0]["kill_score"], "0.99\\xff", "the raw bytes, escaped");
}

#[test]
fn every_undecodable_or_misspelt_field_is_refused_naming_it() {
    let mut s = Stream::new();
    // (plan id, extra field, value, the field the error must name)
    let cases: [(&'static str, &[u8], &[u8], &str); 6] = [
        ("lev-bytes", b"leverage", b"20\xff", "`leverage`"),
        ("ro-bytes", b"reduceOnly", b"\xff\xfe", "`reduceOnly`"),
        ("qty-twice", b"qty", b"5\xff", "`qty`"),
        (
            "name-bytes",
            b"kill_sc\xffore",
            b"0.99",
            "`kill_sc\\xffore`",
        ),
        ("typo", b"levarage", b"20", "did you mean `leverage`?"),
        ("camel", b"killScore", b"0.99", "did you mean `kill_score`?"),
    ];
    for (id, name, value, named) in cases {
        let mut plan = open(id);
        plan.push((name, value));
        s.publish(&plan);
        assert_eq!(s.verdict(id), None, "{id} was decided");
        let dl = s.dead_letters();
        let mine = dl
            .iter()
            .find(|d| d["plan_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {dl:?}"));
        assert!(mine["error"].contains(named), "{id}: {}", mine["error"]);
    }
    // The same open without them is allowed: what was refused was the field.
    s.publish(&open("clean"));
    assert_eq!(s.verdict("clean").as_deref(), Some("allow"));
}

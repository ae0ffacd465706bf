//! Nothing slips through on the stream: field names and values that are not UTF-8, duplicated
//! fields and near misses of contract fields are refused naming the field and dead-lettered,
//! against a real redis-server and the governor's own plan worker — never decided on a
//! dropped or defaulted value.

mod support;

use governor_core::Config;
use quantum_governor::clock::wall_clock;
use quantum_governor::exchange::paper_market::PaperMarket;
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

/// A ledger hash another service wrote badly, with three governors deciding.
#[test]
fn a_poisoned_ledger_record_holds_only_its_own_symbols_opens() {
    use governor_core::book::LedgerPosition;
    use governor_core::types::{Side, Symbol};
    use quantum_governor::service::quarantine::QuarantineReporter;
    let mut s = Stream::new();
    support::set_universe(
        &s.server.url(),
        &["ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"],
    );
    let store = s.store();
    store
        .put_ledger_position(
            &Symbol::parse("BNBUSDT").unwrap(),
            &LedgerPosition {
                side: Side::Long,
                qty: 0.1,
                entry_price: 600.0,
                leverage: 5,
                opened_at: wall_clock(),
                entry_score: None,
                entry_fees: 0.0,
            },
        )
        .unwrap();
    let poison = |c: &mut redis::Connection, amt: &str| {
        redis::cmd("HSET")
            .arg("quantum:position:ledger:ETHUSDT")
            .arg(&[
                ("position_amt", amt),
                ("entry_price", "2000"),
                ("side", "LONG"),
                ("leverage", "5"),
                ("opened_at", "1"),
                ("entry_score", ""),
            ])
            .query::<()>(c)
            .unwrap();
    };
    poison(&mut s.conn, "abc");
    let index = store.refresh_ledger_index().unwrap();
    assert_eq!(
        index.added, 1,
        "the sweeper indexes what other services write"
    );
    let mut reporter = QuarantineReporter::default();
    let book = store.book(wall_clock()).unwrap();
    assert_eq!(book.corrupt.len(), 1, "{:?}", book.corrupt);
    assert_eq!(book.corrupt[0].key, "position:ledger:ETHUSDT");
    reporter
        .report(&store, &book.corrupt, &[], wall_clock())
        .unwrap();
    // Three governors share the stream.
    let workers: Vec<PlanWorker> = (0..2)
        .map(|i| {
            let market = Arc::new(
                PaperMarket::load(
                    &std::path::PathBuf::from(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../data/klines"
                    )),
                    wall_clock(),
                    13_661.0,
                    Arc::new(s.store()),
                    100,
                )
                .unwrap(),
            );
            let mut cfg = Config::default();
            cfg.correlation.max = 1.0;
            PlanWorker::connect(
                &s.server.url(),
                Arc::new(cfg),
                market,
                &format!("g{i}"),
                30_000,
            )
            .unwrap()
        })
        .collect();
    let mut all = workers;
    all.push(s.worker);
    let plans: Vec<Vec<(&[u8], &[u8])>> = vec![
        vec![
            (b"plan_id", b"eth-open"),
            (b"symbol", b"ETHUSDT"),
            (b"action", b"OPEN_LONG"),
            (b"decision", b"EXECUTE"),
            (b"qty", b"0.04"),
        ],
        vec![
            (b"plan_id", b"sol-open"),
            (b"symbol", b"SOLUSDT"),
            (b"action", b"OPEN_LONG"),
            (b"decision", b"EXECUTE"),
            (b"qty", b"0.5"),
        ],
        vec![
            (b"plan_id", b"bnb-close"),
            (b"symbol", b"BNBUSDT"),
            (b"action", b"FULL_CLOSE_PROPOSED"),
            (b"decision", b"EXECUTE"),
        ],
        vec![
            (b"plan_id", b"xrp-open"),
            (b"symbol", b"XRPUSDT"),
            (b"action", b"OPEN_LONG"),
            (b"decision", b"EXECUTE"),
            (b"qty", b"10"),
        ],
    ];
    for p in &plans {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(STREAM).arg("*");
        for (k, v) in p {
            cmd.arg(*k).arg(*v);
        }
        cmd.query::<String>(&mut s.conn).unwrap();
    }
    let started = std::time::Instant::now();
    let mut handled = 0;
    while handled < plans.len() {
        for w in all.iter_mut() {
            handled += w
                .step(5)
                .expect("the store is reachable: no STORE_UNAVAILABLE")
                .acked;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "only {handled} decided"
        );
    }
    let verdict = |id: &str| {
        let id = governor_core::types::PlanId::parse(id).unwrap();
        store
            .decision(&id)
            .unwrap()
            .map(|d| d.reason.map_or("allow".to_owned(), |r| r.code().to_owned()))
    };
    assert_eq!(verdict("eth-open").as_deref(), Some("state_record_corrupt"));
    assert_eq!(verdict("sol-open").as_deref(), Some("allow"));
    assert_eq!(
        verdict("bnb-close").as_deref(),
        Some("allow"),
        "a healthy close is decided"
    );
    assert!(verdict("xrp-open").is_some(), "every other plan is decided");
    let trace = store
        .decision(&governor_core::types::PlanId::parse("eth-open").unwrap())
        .unwrap()
        .unwrap()
        .trace
        .json()
        .into_owned();
    assert!(
        trace.contains("position:ledger:ETHUSDT") && trace.contains("position_amt"),
        "{trace}"
    );
    let events = store.read_stream("stream:governor.events").unwrap();
    let named = |name: &str| {
        events.iter().any(|e| {
            e.iter().any(|(k, v)| k == "event" && v == name)
                && e.iter().any(|(k, v)| k == "field" && v == "position_amt")
        })
    };
    assert!(named("STATE_RECORD_CORRUPT"), "{events:?}");

    // Repaired: the record reads, ETHUSDT is decided on its merits again.
    poison(&mut s.conn, "0.04");
    redis::cmd("HDEL")
        .arg("quantum:position:ledger:ETHUSDT")
        .arg("entry_score")
        .query::<()>(&mut s.conn)
        .unwrap();
    let book = store.book(wall_clock()).unwrap();
    assert!(book.corrupt.is_empty(), "{:?}", book.corrupt);
    reporter
        .report(&store, &book.corrupt, &[], wall_clock())
        .unwrap();
    let events = store.read_stream("stream:governor.events").unwrap();
    assert!(events.iter().any(|e| e
        .iter()
        .any(|(k, v)| k == "event" && v == "STATE_RECORD_REPAIRED")));
    let mut again = all.pop().unwrap();
    redis::cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg(&[
            ("plan_id", "eth-open-2"),
            ("symbol", "ETHUSDT"),
            ("action", "OPEN_LONG"),
            ("decision", "EXECUTE"),
            ("qty", "0.01"),
        ])
        .query::<String>(&mut s.conn)
        .unwrap();
    while verdict("eth-open-2").is_none() {
        again.step(5).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
    assert_ne!(
        verdict("eth-open-2").as_deref(),
        Some("state_record_corrupt")
    );
}

#[test]
fn a_ledger_key_that_is_not_utf8_or_not_a_symbol_is_reported_and_the_index_goes_on() {
    let mut s = Stream::new();
    for key in [
        &b"quantum:position:ledger:BAD\xff"[..],
        b"quantum:position:ledger:zzzusdt",
        b"quantum:position:ledger:ETHUSDT",
    ] {
        redis::cmd("HSET")
            .arg(key)
            .arg(&[
                ("position_amt", "1"),
                ("entry_price", "2000"),
                ("side", "LONG"),
                ("leverage", "5"),
                ("opened_at", "1"),
            ])
            .query::<()>(&mut s.conn)
            .unwrap();
    }
    let store = s.store();
    let index = store.refresh_ledger_index().unwrap();
    assert_eq!(
        index.added, 2,
        "the valid key and the lower-case one are indexed"
    );
    assert_eq!(
        index.unreadable,
        vec!["quantum:position:ledger:BAD\\xff".to_owned()]
    );
    let book = store.book(wall_clock()).unwrap();
    assert!(book
        .positions
        .contains_key(&governor_core::types::Symbol::parse("ETHUSDT").unwrap()));
    assert_eq!(book.corrupt.len(), 1, "{:?}", book.corrupt);
    assert_eq!(book.corrupt[0].key, "position:ledger:zzzusdt");
    assert_eq!(
        book.corrupt[0].symbol.as_ref().map(|s| s.as_str()),
        Some("ZZZUSDT")
    );
    s.worker.step(5).unwrap();
}

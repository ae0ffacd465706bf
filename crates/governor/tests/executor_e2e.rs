//! End to end on a real redis-server and the local Binance server: plan → governor permit →
//! executor order → `apply.result` → the governor's slot occupied; a close frees the slot and
//! the exit lock; an expired permit is never executed; a permit is used once even with two
//! executors.

mod support;

use governor_core::types::Symbol;
use quantum_governor::clock::wall_clock;
use quantum_governor::executor::Outcome;
use quantum_governor::store::redis::RedisStore;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::executor_rig::{late_clock, Rig};
use support::fake_binance::{FakeBinance, KEY, SECRET};
use support::redis_server::RedisServer;

#[test]
fn a_permitted_open_fills_occupies_its_slot_and_a_close_frees_it() {
    let mut rig = Rig::new();
    rig.start_executor("executor", "ex-1", wall_clock);
    let eth = Symbol::parse("ETHUSDT").unwrap();

    rig.open("e2e-open-1", "ETHUSDT", "0.05");
    rig.wait("the open's result", |r| r.results().len() == 1);
    let result = &rig.results()[0];
    assert_eq!(result["executed"], "true", "{result:?}");
    assert_eq!(result["plan_id"], "e2e-open-1");
    assert_eq!(result["filled_qty"], "0.05");
    let orders = rig.fake.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        (
            orders[0].side.as_str(),
            orders[0].qty,
            orders[0].reduce_only,
            orders[0].client_id.as_str()
        ),
        ("BUY", 0.05, false, "e2e-open-1")
    );
    assert_eq!(
        rig.fake.state.lock().unwrap().leverage.get("ETHUSDT"),
        Some(&5),
        "the open traded at the leverage the permit was sized for"
    );
    let st = rig.store().state(wall_clock()).unwrap();
    assert!(
        st.book.positions.contains_key(&eth),
        "the ledger holds the fill"
    );
    assert!(
        st.book.reservations.is_empty(),
        "the reservation became the position"
    );
    assert_eq!(st.book.slots().len(), 1, "its slot is occupied");

    rig.plan(&[
        ("plan_id", "e2e-close-1"),
        ("symbol", "ETHUSDT"),
        ("harvest_action", "PARTIAL_50"),
        ("decision", "EXECUTE"),
    ]);
    rig.wait("the partial close's result", |r| r.results().len() == 2);
    assert_eq!(
        rig.results()[1]["executed"],
        "true",
        "{:?}",
        rig.results()[1]
    );
    let partial = &rig.fake.orders()[1];
    assert_eq!(
        (partial.side.as_str(), partial.qty, partial.reduce_only),
        ("SELL", 0.025, true),
        "half, rounded to the step"
    );

    rig.plan(&[
        ("plan_id", "e2e-close-2"),
        ("symbol", "ETHUSDT"),
        ("action", "FULL_CLOSE_PROPOSED"),
        ("decision", "EXECUTE"),
    ]);
    rig.wait("the full close's result", |r| r.results().len() == 3);
    let close = &rig.fake.orders()[2];
    assert_eq!(
        (close.side.as_str(), close.qty, close.reduce_only),
        ("SELL", 0.025, true)
    );
    let st = rig.store().state(wall_clock()).unwrap();
    assert!(!st.book.positions.contains_key(&eth), "the ledger is flat");
    assert!(st.book.slots().is_empty(), "the slot is free");
    assert!(
        st.book.live_exit_lock(&eth, wall_clock()).is_none(),
        "the exit lock is released"
    );

    // Below the symbol's minimum notional (5 USDT): refused before any request.
    rig.open("e2e-tiny", "SOLUSDT", "0.01");
    rig.wait("the refused open's result", |r| r.results().len() == 4);
    let refused = &rig.results()[3];
    assert_eq!(refused["executed"], "false");
    assert!(refused["error"].contains("minNotional"), "{refused:?}");
    assert_eq!(rig.fake.orders().len(), 3, "nothing was sent");
    assert!(
        rig.store()
            .state(wall_clock())
            .unwrap()
            .book
            .reservations
            .is_empty(),
        "the reservation was released"
    );
}

#[test]
fn an_expired_permit_is_never_executed_and_a_permit_is_used_once_by_two_executors() {
    let mut rig = Rig::new();
    // An executor whose clock is past every permit's expiry.
    let late = rig.start_executor("late", "ex-late", late_clock);
    rig.open("e2e-expired", "ETHUSDT", "0.05");
    rig.wait("the late executor's verdict", |r| {
        !r.outcomes.lock().unwrap().is_empty()
    });
    let (_, _, outcome) = rig.outcomes.lock().unwrap()[0].clone();
    assert!(
        matches!(&outcome, Outcome::NotPermitted(why) if why.contains("expired")),
        "{outcome:?}"
    );
    assert!(
        rig.fake.orders().is_empty(),
        "an expired permit placed no order"
    );

    // (Its clock is wrong: it would destroy every permit it takes. It stops here.)
    late.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(400));
    // Two executors in two groups both receive the next plan: one order only.
    rig.start_executor("exA", "ex-a", wall_clock);
    rig.start_executor("exB", "ex-b", wall_clock);
    rig.open("e2e-once", "SOLUSDT", "1");
    rig.wait("both executors' verdicts", |r| {
        r.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| n != "ex-late")
            .count()
            >= 4
    });
    let once: Vec<_> = rig
        .fake
        .orders()
        .into_iter()
        .filter(|o| o.client_id == "e2e-once")
        .collect();
    assert_eq!(once.len(), 1, "{once:?}");
    let outcomes = rig.outcomes.lock().unwrap().clone();
    let filled = outcomes
        .iter()
        .filter(|(_, _, o)| matches!(o, Outcome::Filled(_)))
        .count();
    assert_eq!(filled, 1, "{outcomes:?}");
}

#[test]
fn serve_on_binance_with_its_executor_trades_and_never_prints_a_secret() {
    let redis = RedisServer::start();
    let fake = FakeBinance::start(Some(&std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/klines"
    ))));
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    support::set_universe(&redis.url(), &["ETHUSDT"]);
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out.log"), dir.path().join("err.log"));
    let mut child = support::serve_on_binance(
        &redis.url(),
        &fake.url,
        &[("GOV_MAX_CORRELATION", "1.0")],
        std::process::Stdio::from(std::fs::File::create(&out).unwrap()),
        std::process::Stdio::from(std::fs::File::create(&err).unwrap()),
    );
    redis::cmd("XADD")
        .arg("quantum:stream:apply.plan")
        .arg("*")
        .arg("plan_id")
        .arg("proc-1")
        .arg("symbol")
        .arg("ETHUSDT")
        .arg("action")
        .arg("OPEN_LONG")
        .arg("decision")
        .arg("EXECUTE")
        .arg("qty")
        .arg("0.05")
        .query::<String>(&mut conn)
        .unwrap();
    let store = RedisStore::open(&redis.url(), "quantum:", 3600, "reader").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.read_stream("stream:apply.result").unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no result: {}",
            std::fs::read_to_string(&out).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap()
    );
    assert_eq!(fake.orders().len(), 1, "{logs}");
    assert!(logs.contains("EXECUTED plan=proc-1"), "{logs}");
    assert!(
        !logs.contains(KEY) && !logs.contains(SECRET),
        "a secret reached the output:\n{logs}"
    );
}

#[test]
fn execute_as_its_own_process_fills_on_the_paper_exchange() {
    let redis = RedisServer::start();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    support::set_universe(&redis.url(), &["ETHUSDT"]);
    let spawn = |args: &[&str]| {
        support::governor_command()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let url = redis.url();
    let mut governor = spawn(&["serve", "--redis", &url, "--workers", "1"]);
    let mut executor = spawn(&["execute", "--redis", &url, "--exchange", "paper"]);
    redis::cmd("XADD")
        .arg("quantum:stream:apply.plan")
        .arg("*")
        .arg("plan_id")
        .arg("paper-1")
        .arg("symbol")
        .arg("ETHUSDT")
        .arg("action")
        .arg("OPEN_LONG")
        .arg("decision")
        .arg("EXECUTE")
        .arg("qty")
        .arg("0.05")
        .query::<String>(&mut conn)
        .unwrap();
    let store = RedisStore::open(&url, "quantum:", 3600, "reader").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        if let Some(r) = store
            .read_stream("stream:apply.result")
            .unwrap()
            .into_iter()
            .next()
        {
            break r.into_iter().collect::<std::collections::BTreeMap<_, _>>();
        }
        assert!(
            Instant::now() < deadline,
            "no result from the paper executor"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = (
        governor.kill(),
        executor.kill(),
        governor.wait(),
        executor.wait(),
    );
    assert_eq!(result["executed"], "true", "{result:?}");
    assert_eq!(result["filled_qty"], "0.05");
    let ledger = store.ledger(wall_clock()).unwrap();
    assert_eq!(ledger[&Symbol::parse("ETHUSDT").unwrap()].qty, 0.05);
}

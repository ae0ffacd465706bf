//! The reconciler raced on purpose: 100 rounds of open → fill → close through the governor,
//! the executor and the local Binance server, with the reconciler comparing the ledger and the
//! exchange every 100 ms the whole time. A correction is only right when the two really
//! disagree; here they never do once each result lands, so every correction is a wrong one.

mod support;

use quantum_governor::clock::wall_clock;
use quantum_governor::service::reconcile::reconcile_once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::executor_rig::Rig;

#[test]
fn a_reconciler_every_100_ms_never_releases_or_adopts_a_position_wrongly() {
    let mut rig = Rig::with(
        |cfg| {
            cfg.cadence.max_exec_per_hour = 10_000;
            cfg.cadence.max_exec_per_5min = 10_000;
            // Each round trip at one price loses its two fees: a loss streak, not this test's.
            cfg.gates.loss_streak = governor_core::config::GateMode::Off;
        },
        |c| c,
    );
    rig.start_executor("executor", "ex-1", wall_clock);
    let (store, venue, cfg) = (rig.store(), rig.venue.clone(), rig.cfg.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let cycles = Arc::new(AtomicUsize::new(0));
    let reconciler = {
        let (stop, wrong, cycles) = (stop.clone(), wrong.clone(), cycles.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let done = reconcile_once(&store, &venue, &cfg, wall_clock()).unwrap();
                wrong.lock().unwrap().extend(done.applied);
                cycles.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let symbols = ["ETHUSDT", "SOLUSDT", "BNBUSDT"];
    for round in 0..100 {
        let symbol = symbols[round % 3];
        let (open, close) = (format!("race-open-{round}"), format!("race-close-{round}"));
        let qty = match symbol {
            "ETHUSDT" => "0.05",
            "SOLUSDT" => "0.5",
            _ => "0.2",
        };
        rig.open(&open, symbol, qty);
        rig.wait(&open, |r| r.results().iter().any(|x| x["plan_id"] == open));
        rig.plan(&[
            ("plan_id", &close),
            ("symbol", symbol),
            ("action", "FULL_CLOSE_PROPOSED"),
            ("decision", "EXECUTE"),
        ]);
        rig.wait(&close, |r| {
            r.results().iter().any(|x| x["plan_id"] == close)
        });
        let ledger = rig.store().ledger(wall_clock()).unwrap();
        assert!(ledger.is_empty(), "round {round}: {ledger:?}");
    }
    stop.store(true, Ordering::Relaxed);
    reconciler.join().unwrap();
    let results = rig.results();
    assert_eq!(results.len(), 200);
    assert!(
        results.iter().all(|r| r["executed"] == "true"),
        "every order filled: {results:?}"
    );
    assert!(
        cycles.load(Ordering::Relaxed) > 20,
        "the reconciler ran throughout"
    );
    let wrong = wrong.lock().unwrap();
    assert!(wrong.is_empty(), "wrong corrections: {wrong:?}");
    assert_eq!(rig.fake.orders().len(), 200);
    assert!(rig.fake.state.lock().unwrap().positions.is_empty());
}

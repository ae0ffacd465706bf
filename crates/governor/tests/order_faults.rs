//! Every failure Binance documents for an order, on an open and on a close, against a real
//! redis-server and the local Binance server: the published result equals what the exchange
//! holds, no client id ever gets a second order, the governor's slot table equals the
//! exchange's positions after one reconcile cycle, and while an outcome is unknown its slot
//! stays held.

mod support;

use governor_core::book::LedgerPosition;
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Side, Symbol};
use quantum_governor::clock::wall_clock;
use quantum_governor::executor::Outcome;
use quantum_governor::service::reconcile::reconcile_once;
use quantum_governor::store::StateStore;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use support::executor_rig::Rig;
use support::fake_binance::{Canned, Fault};

const ORDER: &str = "/fapi/v1/order";

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

/// Binance's 503 with -1007: "Send status unknown; execution status unknown".
fn status_unknown() -> Canned {
    Canned {
        status: 503,
        headers: vec![],
        body: json!({"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."}).to_string(),
    }
}

/// A world whose client gives up on an answer after 1 s and whose request window is 1 s (so
/// that "never placed" is known 1 s after sending, not 5).
fn rig() -> Rig {
    let mut rig = Rig::with(
        |_| {},
        |c| {
            c.with_timeout(Duration::from_secs(1))
                .with_recv_window(1_000)
        },
    );
    rig.start_executor("executor", "ex-1", wall_clock);
    rig
}

/// A position held at the exchange and in the ledger, for the close cases.
fn hold(rig: &Rig, symbol: &str, qty: f64) {
    rig.fake
        .state
        .lock()
        .unwrap()
        .positions
        .insert(symbol.to_owned(), (qty, 100.0));
    rig.store()
        .put_ledger_position(
            &sym(symbol),
            &LedgerPosition {
                side: Side::Long,
                qty,
                entry_price: 100.0,
                leverage: 5,
                opened_at: Timestamp(wall_clock().millis() - 3_600_000),
                entry_score: Some(70.0),
                entry_fees: 0.0,
            },
        )
        .unwrap();
}

fn close(rig: &Rig, id: &str, symbol: &str) {
    rig.plan(&[
        ("plan_id", id),
        ("symbol", symbol),
        ("action", "FULL_CLOSE_PROPOSED"),
        ("decision", "EXECUTE"),
    ]);
}

/// The result published for `id` (waits for it).
fn result_of(rig: &Rig, id: &str) -> BTreeMap<String, String> {
    rig.wait(&format!("the result of {id}"), |r| {
        r.results().iter().any(|x| x["plan_id"] == id)
    });
    rig.results()
        .into_iter()
        .find(|x| x["plan_id"] == id)
        .unwrap()
}

/// What every case must show once its result is out.
fn books_are_right(rig: &Rig, id: &str, symbol: &str) -> BTreeMap<String, String> {
    let result = result_of(rig, id);
    assert!(
        rig.fake.orders_for(id) <= 1,
        "a second order for {id}: {:?}",
        rig.fake.orders()
    );
    let sent = rig.fake.orders().into_iter().find(|o| o.client_id == id);
    match &sent {
        Some(o) => {
            assert_eq!(result["executed"], "true", "{result:?}");
            let filled: f64 = result["filled_qty"].parse().unwrap();
            assert!((filled - o.executed).abs() < 1e-12, "{result:?} vs {o:?}");
            let fee: f64 = result["fee"].parse().unwrap();
            assert!((fee - o.commission).abs() < 1e-9, "{result:?} vs {o:?}");
        }
        None => assert_eq!(result["executed"], "false", "{result:?}"),
    }
    let store = rig.store();
    let now = wall_clock();
    reconcile_once(&store, &rig.venue, &rig.cfg, now).unwrap();
    let book = store.book(now).unwrap();
    let slots: Vec<(String, Side)> = book
        .slots()
        .into_iter()
        .map(|(s, slot)| (s.to_string(), slot.side))
        .collect();
    let exchange: Vec<(String, Side)> = rig
        .fake
        .state
        .lock()
        .unwrap()
        .positions
        .iter()
        .map(|(s, (amt, _))| {
            let side = if *amt > 0.0 { Side::Long } else { Side::Short };
            (s.clone(), side)
        })
        .collect();
    assert_eq!(slots, exchange, "slot table vs exchange ({symbol})");
    assert!(book.in_doubt.is_empty(), "{:?}", book.in_doubt);
    assert!(book.reservations.is_empty(), "{:?}", book.reservations);
    result
}

#[test]
fn a_503_minus_1007_after_the_fill_is_asked_for_and_booked_as_filled() {
    let rig = rig();
    rig.fake
        .fault_next_order(Fault::AnswerAfterFill(status_unknown()));
    rig.open("f-open-1007", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-1007", "ETHUSDT");
    assert_eq!(r["resolved_by"], "query");
    assert_eq!(rig.fake.position("ETHUSDT"), 0.05);

    rig.fake
        .fault_next_order(Fault::AnswerAfterFill(status_unknown()));
    close(&rig, "f-close-1007", "ETHUSDT");
    let r = books_are_right(&rig, "f-close-1007", "ETHUSDT");
    assert_eq!(
        (r["executed"].as_str(), r["resolved_by"].as_str()),
        ("true", "query")
    );
    assert_eq!(rig.fake.position("ETHUSDT"), 0.0);
}

#[test]
fn a_503_before_anything_happened_is_never_placed_and_never_resent() {
    let rig = rig();
    rig.fake.inject(ORDER, status_unknown());
    rig.open("f-open-503", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-503", "ETHUSDT");
    assert!(r["error"].contains("never placed"), "{r:?}");
    assert_eq!(rig.fake.orders_for("f-open-503"), 0, "not re-sent");

    hold(&rig, "SOLUSDT", 2.0);
    rig.fake.inject(ORDER, status_unknown());
    close(&rig, "f-close-503", "SOLUSDT");
    let r = books_are_right(&rig, "f-close-503", "SOLUSDT");
    assert!(r["error"].contains("never placed"), "{r:?}");
    assert_eq!(
        rig.fake.position("SOLUSDT"),
        2.0,
        "the position is still open"
    );
}

#[test]
fn an_answer_later_than_the_timeout_is_found_by_its_client_id() {
    let rig = rig();
    rig.fake
        .fault_next_order(Fault::LateAfterFill(Duration::from_millis(1_800)));
    rig.open("f-open-late", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-late", "ETHUSDT");
    assert_eq!(
        (r["executed"].as_str(), r["resolved_by"].as_str()),
        ("true", "query")
    );

    rig.fake
        .fault_next_order(Fault::LateAfterFill(Duration::from_millis(1_800)));
    close(&rig, "f-close-late", "ETHUSDT");
    let r = books_are_right(&rig, "f-close-late", "ETHUSDT");
    assert_eq!(r["executed"], "true", "{r:?}");
}

#[test]
fn a_connection_cut_in_the_middle_of_the_answer_is_found_by_its_client_id() {
    let rig = rig();
    rig.fake.fault_next_order(Fault::ResetAfterFill);
    rig.open("f-open-reset", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-reset", "ETHUSDT");
    assert_eq!(r["resolved_by"], "query");

    rig.fake.fault_next_order(Fault::ResetAfterFill);
    close(&rig, "f-close-reset", "ETHUSDT");
    books_are_right(&rig, "f-close-reset", "ETHUSDT");
    assert_eq!(rig.fake.position("ETHUSDT"), 0.0);
}

#[test]
fn a_gateway_error_without_binances_body_then_minus_2013_means_never_placed() {
    let rig = rig();
    let gateway = Canned {
        status: 502,
        headers: vec![],
        body: "<html>502 Bad Gateway</html>".to_owned(),
    };
    rig.fake.inject(ORDER, gateway.clone());
    rig.open("f-open-2013", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-2013", "ETHUSDT");
    assert!(r["error"].contains("never placed"), "{r:?}");
    assert!(rig.fake.hits("GET /fapi/v1/order") >= 1, "it asked");

    hold(&rig, "SOLUSDT", 2.0);
    rig.fake.inject(ORDER, gateway);
    close(&rig, "f-close-2013", "SOLUSDT");
    let r = books_are_right(&rig, "f-close-2013", "SOLUSDT");
    assert!(r["error"].contains("never placed"), "{r:?}");
}

#[test]
fn repeated_429s_are_a_refusal_nothing_was_placed() {
    let rig = rig();
    for _ in 0..2 {
        rig.fake.inject(ORDER, Canned::error(-1003, 429));
    }
    rig.open("f-open-429", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-429", "ETHUSDT");
    assert!(r["error"].contains("429"), "{r:?}");
    assert_eq!(
        r["resolved_by"], "answer",
        "a 4xx is an answer, not a doubt"
    );

    hold(&rig, "SOLUSDT", 2.0);
    for _ in 0..2 {
        rig.fake.inject(ORDER, Canned::error(-1003, 429));
    }
    close(&rig, "f-close-429", "SOLUSDT");
    let r = books_are_right(&rig, "f-close-429", "SOLUSDT");
    assert!(r["error"].contains("429"), "{r:?}");
    assert_eq!(rig.fake.position("SOLUSDT"), 2.0);
}

#[test]
fn a_418_ban_refuses_the_close_and_then_the_open_without_sending_anything() {
    let rig = rig();
    hold(&rig, "SOLUSDT", 2.0);
    rig.fake.inject(ORDER, Canned::error(-1003, 418));
    close(&rig, "f-close-418", "SOLUSDT");
    let r = books_are_right(&rig, "f-close-418", "SOLUSDT");
    assert!(r["error"].contains("418"), "{r:?}");
    assert_eq!(rig.fake.position("SOLUSDT"), 2.0);
    // The ban holds for its Retry-After: the open is refused before anything is sent.
    let posts = rig.fake.hits("POST /fapi/v1/order");
    rig.open("f-open-418", "ETHUSDT", "0.05");
    let r = result_of(&rig, "f-open-418");
    assert_eq!(r["executed"], "false", "{r:?}");
    assert!(r["error"].contains("banned"), "{r:?}");
    assert_eq!(rig.fake.hits("POST /fapi/v1/order"), posts, "nothing sent");
    assert_eq!(rig.fake.orders_for("f-open-418"), 0);
}

#[test]
fn repeated_minus_1021_is_a_refusal_after_one_resync() {
    let rig = rig();
    for _ in 0..2 {
        rig.fake.inject(ORDER, Canned::error(-1021, 400));
    }
    rig.open("f-open-1021", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-1021", "ETHUSDT");
    assert!(r["error"].contains("-1021"), "{r:?}");

    hold(&rig, "SOLUSDT", 2.0);
    for _ in 0..2 {
        rig.fake.inject(ORDER, Canned::error(-1021, 400));
    }
    close(&rig, "f-close-1021", "SOLUSDT");
    let r = books_are_right(&rig, "f-close-1021", "SOLUSDT");
    assert!(r["error"].contains("-1021"), "{r:?}");
}

#[test]
fn a_partial_fill_then_expired_books_the_part_that_filled() {
    let rig = rig();
    rig.fake.fault_next_order(Fault::PartialThenExpired(0.4));
    rig.open("f-open-partial", "ETHUSDT", "0.05");
    let r = books_are_right(&rig, "f-open-partial", "ETHUSDT");
    assert_eq!(r["filled_qty"], "0.02", "{r:?}");
    let ledger = rig.store().ledger(wall_clock()).unwrap();
    assert!((ledger[&sym("ETHUSDT")].qty - 0.02).abs() < 1e-12);

    rig.fake.fault_next_order(Fault::PartialThenExpired(0.5));
    close(&rig, "f-close-partial", "ETHUSDT");
    let r = books_are_right(&rig, "f-close-partial", "ETHUSDT");
    assert_eq!(r["filled_qty"], "0.01", "{r:?}");
    let ledger = rig.store().ledger(wall_clock()).unwrap();
    assert!(
        (ledger[&sym("ETHUSDT")].qty - 0.01).abs() < 1e-12,
        "half is still open"
    );
}

#[test]
fn an_outcome_unknown_past_its_permit_holds_the_slot_until_the_reconciler_settles_it() {
    let mut rig = Rig::with(
        |cfg| cfg.permit_ttl_secs = 2,
        |c| {
            c.with_timeout(Duration::from_secs(1))
                .with_recv_window(1_000)
        },
    );
    rig.start_executor("executor", "ex-1", wall_clock);
    rig.fake
        .fault_next_order(Fault::AnswerAfterFill(status_unknown()));
    for _ in 0..40 {
        rig.fake.inject_method("GET", ORDER, status_unknown()); // every status query too
    }
    rig.open("f-doubt", "ETHUSDT", "0.05");
    let pid = PlanId::parse("f-doubt").unwrap();
    rig.wait("the order in doubt", |r| {
        r.store()
            .book(wall_clock())
            .unwrap()
            .in_doubt
            .contains_key(&pid)
            && r.fake.orders_for("f-doubt") == 1
    });
    // Past the permit's life, the sweeper runs: the reservation (and its slot) stay.
    std::thread::sleep(Duration::from_millis(2_100));
    let store = rig.store();
    let now = wall_clock();
    store.expire(now).unwrap();
    let book = store.book(now).unwrap();
    assert!(
        book.reservations.contains_key(&pid),
        "the unknown open counts as open"
    );
    assert_eq!(book.slots().len(), 1);
    // Nor does the reconciler release or adopt anything on the symbol meanwhile.
    let done = reconcile_once(&store, &rig.venue, &rig.cfg, now).unwrap();
    assert!(done.applied.is_empty(), "{done:?}");
    rig.wait("the executor to give up", |r| {
        r.outcomes
            .lock()
            .unwrap()
            .iter()
            .any(|(_, _, o)| matches!(o, Outcome::Unknown(_)))
    });
    assert!(rig.results().is_empty(), "no result while unknown");
    // Binance answers again: the reconciler asks for the order and books the truth.
    rig.fake.state.lock().unwrap().inject.clear();
    let done = reconcile_once(&store, &rig.venue, &rig.cfg, wall_clock()).unwrap();
    assert_eq!(done.settled.len(), 1, "{done:?}");
    let r = result_of(&rig, "f-doubt");
    assert_eq!(
        (r["executed"].as_str(), r["resolved_by"].as_str()),
        ("true", "reconciler")
    );
    let book = store.book(wall_clock()).unwrap();
    assert!(book.in_doubt.is_empty() && book.reservations.is_empty());
    let p = &book.positions[&sym("ETHUSDT")];
    assert_eq!(
        (p.qty, p.entry_score),
        (0.05, Some(70.0)),
        "with its entry score"
    );
    assert_eq!(rig.fake.orders_for("f-doubt"), 1, "never sent twice");
}

#[test]
fn binances_commissions_turn_three_gross_wins_into_a_loss_streak() {
    let mut rig = Rig::new();
    rig.start_executor("executor", "ex-1", wall_clock);
    for round in 0..3 {
        // Bought at 2000, sold at 2000.5: +0.025 gross on 0.05, −0.1 in commissions.
        rig.fake
            .state
            .lock()
            .unwrap()
            .prices
            .insert("ETHUSDT".into(), 2_000.0);
        let open = format!("fee-open-{round}");
        rig.open(&open, "ETHUSDT", "0.05");
        let r = result_of(&rig, &open);
        assert_eq!(r["fee"], "0.05", "{r:?}");
        rig.fake
            .state
            .lock()
            .unwrap()
            .prices
            .insert("ETHUSDT".into(), 2_000.5);
        let id = format!("fee-close-{round}");
        close(&rig, &id, "ETHUSDT");
        let r = result_of(&rig, &id);
        let gross: f64 = r["realized_pnl"].parse().unwrap();
        assert!((gross - 0.025).abs() < 1e-9, "a gross win: {r:?}");
    }
    let closes = rig.store().book(wall_clock()).unwrap().closes;
    assert_eq!(closes.len(), 3);
    for c in &closes {
        // 0.025 − 0.0500125 − 0.05, by hand.
        assert!((c.pnl - -0.0750125).abs() < 1e-9, "{c:?}");
    }
    rig.open("fee-open-4", "ETHUSDT", "0.05");
    let id = PlanId::parse("fee-open-4").unwrap();
    rig.wait("the fourth open's decision", |r| {
        r.store().decision(&id).unwrap().is_some()
    });
    let d = rig.store().decision(&id).unwrap().unwrap();
    assert_eq!(
        d.reason.map(|r| r.code()),
        Some("symbol_loss_streak"),
        "{d:?}"
    );
}

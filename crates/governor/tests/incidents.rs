//! One regression test per incident of the Python governor this project replaces
//! (the incidents this project was started for). Each is named for what happened.

mod support;

use governor_core::types::Side;
use governor_core::Config;
use quantum_governor::{Governor, Submission};
use std::sync::Arc;
use support::*;

/// 17 positions opened while the limit was 10: several consumers counted positions with a
/// non-atomic scan. Here 8 governor threads race 400 opens over 12 symbols on one store.
#[test]
fn incident_17_positions_under_a_limit_of_10() {
    let mut cfg = Config::default();
    cfg.slots.enabled = false; // the count limit alone, as in the incident
    cfg.cadence.max_exec_per_hour = 10_000;
    cfg.cadence.max_exec_per_5min = 10_000;
    cfg.cadence.symbol_cooldown_secs = 0;
    cfg.correlation.max = 1.0;
    cfg.funds.max_total_notional_usdt = 1e9;
    // Every plan arrives in the same second: the submit throttle is a separate protection.
    cfg.throttle.max_permits_per_sec = 10_000;
    let w = World::new(cfg);
    let inputs = Arc::new(w.inputs());
    let now = w.now;
    let symbols: Vec<&str> = SYMBOLS[1..].to_vec();
    let marks: Vec<f64> = symbols.iter().map(|s| w.mark(s)).collect();
    let handles: Vec<_> = (0..8)
        .map(|g| {
            let gov: Governor = w.gov.clone();
            let inputs = inputs.clone();
            let symbols = symbols.clone();
            let marks = marks.clone();
            std::thread::spawn(move || {
                let mut allowed = 0;
                for i in 0..50 {
                    let k = (g * 7 + i * 5) % symbols.len();
                    let qty = (100.0 / marks[k]).to_string();
                    let id = format!("g{g}-{i}");
                    let fields: Vec<(String, String)> = [
                        ("plan_id", id.as_str()),
                        ("symbol", symbols[k]),
                        ("action", "OPEN_LONG"),
                        ("decision", "EXECUTE"),
                        ("qty", qty.as_str()),
                    ]
                    .iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect();
                    if let Submission::Decided { decision, .. } = gov.submit(&fields, &inputs, now)
                    {
                        if decision.record.verdict == governor_core::snapshot::VerdictKind::Allow {
                            allowed += 1;
                        }
                    }
                }
                allowed
            })
        })
        .collect();
    let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let st = w.state();
    let symbols_held = st.book.slots().len();
    assert!(
        symbols_held <= 10,
        "{symbols_held} symbols held under a limit of 10"
    );
    assert_eq!(symbols_held, 10, "the limit is reached, not undershot");
    assert!(
        allowed >= 10,
        "expansions of held symbols are allowed too: {allowed}"
    );
    assert!(st
        .blocks
        .values()
        .any(|b| b.reason.code() == "max_positions"));
}

/// $118,844 notional on $13,661 of capital (8.7x): caps were checked after the order.
#[test]
fn incident_118k_notional_on_13k_capital() {
    let mut cfg = Config::default();
    cfg.slots.enabled = false;
    cfg.cadence.max_exec_per_hour = 10_000;
    cfg.cadence.max_exec_per_5min = 10_000;
    cfg.correlation.max = 1.0;
    let mut w = World::new(cfg);
    w.equity = 13_661.0;
    let mut permitted = 0.0;
    for (i, s) in SYMBOLS[1..].iter().enumerate() {
        // Each plan asks for 5,942 USDT: twenty of them would be the incident's 118,844.
        let d = w.open(&format!("big{i}"), s, Side::Long, 5_942.0, None);
        assert!(
            ["notional_per_trade_exceeded", "max_positions"].contains(&reason(&d)),
            "{:?}",
            d.verdict
        );
        let d = w.open(&format!("ok{i}"), s, Side::Long, 190.0, None);
        if reason(&d) == "allow" {
            permitted += 190.0;
            w.fill(&format!("ok{i}"));
        } else {
            assert!(
                ["total_notional_exceeded", "max_positions"].contains(&reason(&d)),
                "{:?}",
                d.verdict
            );
        }
        w.advance(61);
    }
    assert!(permitted <= 2_000.0 + 1e-6, "{permitted} USDT permitted");
    assert!(
        permitted >= 1_500.0,
        "the caps are reached, not undershot: {permitted}"
    );
    let st = w.state();
    let total: f64 = st
        .book
        .positions
        .iter()
        .map(|(s, p)| p.qty * w.mark(s.as_str()))
        .sum();
    assert!(
        total / w.equity < 0.15,
        "{total} notional on {} equity",
        w.equity
    );
}

/// Allow-lists drifted across services (8 vs 566 vs 3 symbols): one policy, read at every
/// decision, fail-closed when missing.
#[test]
fn incident_allow_list_drift_reads_the_policy_every_decision() {
    let w = World::new(Config::default());
    assert_eq!(
        reason(&w.open("a1", "ETHUSDT", Side::Long, 100.0, None)),
        "allow"
    );
    w.set_policy(Some(r#"["BTCUSDT"]"#));
    assert_eq!(
        reason(&w.open("a2", "SOLUSDT", Side::Long, 100.0, None)),
        "active_slots_not_in_universe"
    );
    w.set_policy(None);
    assert_eq!(
        reason(&w.open("a3", "SOLUSDT", Side::Long, 100.0, None)),
        "active_slots_no_policy"
    );
}

/// Several exit producers closed the same position at once.
#[test]
fn incident_double_close_by_two_exit_producers() {
    let w = World::new(Config::default());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    let harvest = w.close("harvest-1", "ETHUSDT", "FULL_CLOSE_PROPOSED");
    let stop = w.close("stoploss-1", "ETHUSDT", "FULL_CLOSE_PROPOSED");
    assert_eq!(reason(&harvest), "allow");
    assert_eq!(reason(&stop), "exit_lock_busy_double_close_prevention");
    assert_eq!(w.state().permits.len(), 1);
}

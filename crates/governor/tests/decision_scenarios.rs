//! The named scenarios of the decision-core issue, with its numbers, through the whole
//! pipeline on the embedded store: parse → snapshot → decide → commit → results.

#[macro_use]
mod support;

use governor_core::book::RotationPhase;
use governor_core::config::Config;
use governor_core::results::SettlePolicy;
use governor_core::types::{Side, TradingState};
use governor_core::Verdict;
use support::*;

on_both_stores!(
    a_batch_decides_exactly_as_one_by_one,
    s01_slots_full_when_improvement_is_below_threshold,
    s02_rotation_phase1_holds_the_slot_and_phase2_completes,
    s02b_rotation_completes_by_itself_when_the_close_result_arrives,
    s02c_rotation_times_out_after_120s_and_releases_everything,
    s02d_a_rotation_whose_close_was_permitted_times_out_and_leaves_the_lock_to_that_close,
    s03_correlation_cap_is_direction_aware,
    s04_margin_cap_at_70_percent_passes_at_60,
    s05_policy_missing_unparsable_or_outside_universe,
    s06_regime_sets_desired_slots_in_the_decision,
    s07_fund_caps_block_opens_and_never_closes,
    s07b_cooldown_and_rate_limits_block_opens_and_never_closes,
    s08_second_close_on_a_symbol_is_refused_until_the_first_result,
    s09_trading_state_and_kill_score,
    s10_intent_drift_in_positions_or_exposure_blocks,
    s11_schema_errors_are_dead_lettered_with_field_and_value,
    regression_harvest_action_close_is_never_an_update_sl,
    s12_the_same_plan_id_twice_gets_the_same_decision_once,
    s13_missing_exchange_or_short_history_fails_closed,
    opening_against_a_held_side_is_refused_and_same_side_expands,
    a_failed_open_or_an_expired_permit_releases_slot_and_capital,
    a_filled_open_occupies_its_slot_and_results_are_idempotent,
);

fn four_positions(w: &World, weakest_score: f64) {
    // ETH is the weakest: bought 3 % above the mark (pnl -3 %); the others are flat.
    let eth_entry = w.mark("ETHUSDT") * 1.03;
    w.hold_at(
        "ETHUSDT",
        Side::Long,
        100.0,
        eth_entry,
        Some(weakest_score),
        2,
    );
    w.hold("SOLUSDT", Side::Long, 100.0, Some(80.0));
    w.hold("BNBUSDT", Side::Long, 100.0, Some(85.0));
    w.hold("XRPUSDT", Side::Long, 100.0, Some(90.0));
}

fn s01_slots_full_when_improvement_is_below_threshold(on: &Stores) {
    let w = on.world(Config::default());
    four_positions(&w, 68.0);
    let d = w.open("cand-1", "ADAUSDT", Side::Long, 100.0, Some(73.0));
    assert_eq!(reason(&d), "slots_full");
    assert_eq!(
        (d.record.desired_slots, d.record.occupied_slots),
        (Some(4), Some(4))
    );
    let rotation = trace_line(&d, "rotation");
    let improvement = rotation["inputs"]["improvement"].as_f64().unwrap();
    assert!((improvement - 5.0 / 68.0).abs() < 1e-12, "{improvement}");
    assert_eq!(rotation["inputs"]["weakest"], "ETHUSDT");
    let Verdict::Block { detail, .. } = &d.verdict else {
        unreachable!()
    };
    assert!(detail.contains("7.35% <= 15.00%"), "{detail}");
    assert!(w.state().published.is_empty(), "no rotation may start");
}

fn s02_rotation_phase1_holds_the_slot_and_phase2_completes(on: &Stores) {
    let w = on.world(Config::default());
    four_positions(&w, 60.0);
    let d = w.open("cand-abcdefgh-1", "ADAUSDT", Side::Long, 100.0, Some(73.0));
    assert_eq!(reason(&d), "pending");
    assert_eq!(
        d.record.reason.map(|r| r.code()),
        Some("active_slots_waiting_rotation_close")
    );
    let st = w.state();
    let close_id = "rot_cand-abc_ETHUSDT";
    let published = &st.published[0];
    let field = |k: &str| {
        published
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("plan_id"), Some(close_id));
    assert_eq!(field("symbol"), Some("ETHUSDT"));
    assert_eq!(field("action"), Some("FULL_CLOSE_PROPOSED"));
    assert_eq!(field("reduceOnly"), Some("true"));
    assert_eq!(field("rotation_trigger"), Some("true"));
    assert_eq!(field("new_symbol"), Some("ADAUSDT"));
    assert_eq!(field("new_plan_id"), Some("cand-abcdefgh-1"));
    assert_eq!(st.book.exit_locks[&sym("ETHUSDT")].holder, pid(close_id));
    assert_eq!(
        st.book.rotations[&pid("cand-abcdefgh-1")].phase,
        RotationPhase::AwaitingClose
    );
    assert_eq!(w.events("ROTATION_LOCK_CREATED"), 1);

    // Another candidate meanwhile: slots still full, and ETH is already being rotated out.
    let other = w.open("other-1", "DOGEUSDT", Side::Long, 100.0, Some(50.0));
    assert_eq!(reason(&other), "slots_full");

    // The close plan comes back through the plan stream and passes the close path.
    let fields: Vec<(&str, &str)> = published
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let close = decided(w.submit(&fields));
    assert_eq!(reason(&close), "allow", "{:?}", close.verdict);
    assert_eq!(
        w.state().book.rotations[&pid("cand-abcdefgh-1")].phase,
        RotationPhase::ClosePermitted
    );

    // Its result arrives: the slot is held for the pending plan only. Apply it to the store
    // alone first, to look at the window between the close and phase 2.
    let result = governor_core::results::ExecutionResult {
        plan_id: pid(close_id),
        symbol: sym("ETHUSDT"),
        executed: true,
        reduce_only: true,
        action: governor_core::plan::Action::Close(governor_core::plan::CloseKind::Full),
        filled_qty: 100.0 / w.mark("ETHUSDT"),
        avg_price: w.mark("ETHUSDT"),
        error: None,
        fee: None,
        realized_pnl: None,
        resolved_by: None,
    };
    w.execute_on_exchange(
        &sym("ETHUSDT"),
        "FULL_CLOSE_PROPOSED",
        result.filled_qty,
        result.avg_price,
    );
    let settlement = w
        .gov
        .store()
        .settle(&result, &SettlePolicy::of(w.gov.config()), w.now)
        .unwrap();
    assert_eq!(settlement.redecide, Some(pid("cand-abcdefgh-1")));
    let st = w.state();
    assert!(!st.book.positions.contains_key(&sym("ETHUSDT")));
    assert!(
        !st.book.exit_locks.contains_key(&sym("ETHUSDT")),
        "exit lock released"
    );
    let squatter = w.open("squatter-1", "LTCUSDT", Side::Long, 100.0, Some(10.0));
    assert_eq!(
        reason(&squatter),
        "slots_full",
        "the freed slot is held for the pending plan"
    );

    // Phase 2: the governor re-decides the pending plan itself.
    let plan = w
        .gov
        .store()
        .rotation_plan(&pid("cand-abcdefgh-1"))
        .unwrap()
        .unwrap();
    let phase2 = decided(w.gov.decide_plan(&plan, &w.inputs(), w.now));
    assert_eq!(reason(&phase2), "allow", "{:?}", phase2.verdict);
    let st = w.state();
    assert!(st.permits.contains_key(&pid("cand-abcdefgh-1")));
    assert!(st.book.rotations.is_empty());
    assert_eq!(st.book.slots().len(), 4);
    assert_eq!(w.events("ROTATION_COMPLETE"), 1);
}

fn s02b_rotation_completes_by_itself_when_the_close_result_arrives(on: &Stores) {
    let w = on.world(Config::default());
    four_positions(&w, 60.0);
    w.open("cand-2", "ADAUSDT", Side::Long, 100.0, Some(73.0));
    let close_id = "rot_cand-2_ETHUSDT";
    assert_eq!(
        reason(&w.close(close_id, "ETHUSDT", "FULL_CLOSE_PROPOSED")),
        "allow"
    );
    let outcome = w.fill(close_id);
    let phase2 = decided(outcome.phase2.expect("phase 2 ran"));
    assert_eq!(reason(&phase2), "allow");
    assert_eq!(w.events("ROTATION_COMPLETE"), 1);
}

fn s02c_rotation_times_out_after_120s_and_releases_everything(on: &Stores) {
    let mut w = on.world(Config::default());
    four_positions(&w, 60.0);
    w.open("cand-3", "ADAUSDT", Side::Long, 100.0, Some(73.0));
    w.advance(119);
    w.gov.tick(w.now).unwrap();
    assert_eq!(w.state().book.rotations.len(), 1, "still waiting at 119 s");
    w.advance(1);
    w.gov.tick(w.now).unwrap();
    let st = w.state();
    let record = &st.decisions[&pid("cand-3")];
    assert_eq!(
        record.reason.map(|r| r.code()),
        Some("active_slots_rotation_timeout")
    );
    assert!(st.book.rotations.is_empty());
    assert!(!st.book.exit_locks.contains_key(&sym("ETHUSDT")));
    assert_eq!(
        st.book.slots().len(),
        4,
        "ETH was never closed: it keeps its slot"
    );
    assert_eq!(w.events("ROTATION_TIMEOUT"), 1);
    assert!(st.blocks.contains_key(&pid("cand-3")));
}

/// A rotation's close permitted at 70 s, the rotation timed out at 120 s: the close may still
/// be sent (its permit lives to 130 s), so its exit lock stays (to 190 s) and a second close of
/// the symbol is refused meanwhile; the close's result then releases it.
fn s02d_a_rotation_whose_close_was_permitted_times_out_and_leaves_the_lock_to_that_close(
    on: &Stores,
) {
    let mut w = on.world(Config::default());
    four_positions(&w, 60.0);
    w.open("cand-4", "ADAUSDT", Side::Long, 100.0, Some(73.0));
    let close_id = "rot_cand-4_ETHUSDT";
    w.advance(70);
    assert_eq!(
        reason(&w.close(close_id, "ETHUSDT", "FULL_CLOSE_PROPOSED")),
        "allow"
    );
    w.advance(50);
    w.gov.tick(w.now).unwrap();
    let st = w.state();
    assert_eq!(
        st.decisions[&pid("cand-4")].reason.map(|r| r.code()),
        Some("active_slots_rotation_timeout")
    );
    assert!(st.book.rotations.is_empty());
    assert_eq!(
        st.book.exit_locks.get(&sym("ETHUSDT")).map(|l| &l.holder),
        Some(&pid(close_id)),
        "the permitted close keeps its exit lock"
    );
    let second = w.close("second-close", "ETHUSDT", "FULL_CLOSE_PROPOSED");
    assert_eq!(reason(&second), "exit_lock_busy_double_close_prevention");
    w.fill(close_id);
    let st = w.state();
    assert!(!st.book.exit_locks.contains_key(&sym("ETHUSDT")));
    assert!(!st.book.positions.contains_key(&sym("ETHUSDT")));
    assert_eq!(st.book.slots().len(), 3, "no rotation holds the freed slot");
}

fn s03_correlation_cap_is_direction_aware(on: &Stores) {
    let mut w = on.world(Config::default());
    // SOL follows ETH closely: same common factor, little idiosyncratic noise.
    let mut common = Noise::new(99);
    let common: Vec<f64> = (0..BARS).map(|_| common.normal()).collect();
    w.klines
        .insert(sym("ETHUSDT"), series(20.0, 0.0, 0.004, &common, 1.0, 5));
    w.klines
        .insert(sym("SOLUSDT"), series(30.0, 0.0, 0.004, &common, 0.9969, 6));
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    let same = w.open("corr-long", "SOLUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&same), "correlation_cap");
    let corr = trace_line(&same, "correlation")["inputs"]["max_corr"]
        .as_f64()
        .unwrap();
    assert!((corr - 0.994).abs() < 0.003, "correlation {corr}");
    let opposite = w.open("corr-short", "SOLUSDT", Side::Short, 100.0, Some(70.0));
    assert_eq!(reason(&opposite), "allow", "{:?}", opposite.verdict);
    let hedge = trace_line(&opposite, "correlation")["inputs"]["max_corr"]
        .as_f64()
        .unwrap();
    assert!((hedge + corr).abs() < 1e-12);
}

fn s04_margin_cap_at_70_percent_passes_at_60(on: &Stores) {
    let mut w = on.world(Config::default());
    w.equity = 1000.0;
    // ETH: 1200 USDT at 2x = 600 margin; candidate 100 USDT at 1x = 100 → 70 %.
    w.hold_at(
        "ETHUSDT",
        Side::Long,
        1200.0,
        w.mark("ETHUSDT"),
        Some(70.0),
        2,
    );
    let qty = (100.0 / w.mark("SOLUSDT")).to_string();
    let open = [
        ("plan_id", "m70"),
        ("symbol", "SOLUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("leverage", "1"),
    ];
    let d = decided(w.submit(&open));
    assert_eq!(reason(&d), "margin_cap");
    let usage = trace_line(&d, "margin")["inputs"]["projected_usage"]
        .as_f64()
        .unwrap();
    assert!((usage - 0.70).abs() < 1e-9, "{usage}");
    // ETH 1000 USDT at 2x = 500 → 60 %: passes.
    w.hold_at(
        "ETHUSDT",
        Side::Long,
        1000.0,
        w.mark("ETHUSDT"),
        Some(70.0),
        2,
    );
    let mut open60 = open;
    open60[0] = ("plan_id", "m60");
    let d = decided(w.submit(&open60));
    assert_eq!(reason(&d), "allow", "{:?}", d.verdict);
    let usage = trace_line(&d, "margin")["inputs"]["projected_usage"]
        .as_f64()
        .unwrap();
    assert!((usage - 0.60).abs() < 1e-9, "{usage}");
}

fn s05_policy_missing_unparsable_or_outside_universe(on: &Stores) {
    let w = on.world(Config::default());
    w.set_policy(None);
    assert_eq!(
        reason(&w.open("p1", "ETHUSDT", Side::Long, 100.0, None)),
        "active_slots_no_policy"
    );
    w.set_policy(Some("BTCUSDT,ETHUSDT"));
    assert_eq!(
        reason(&w.open("p2", "ETHUSDT", Side::Long, 100.0, None)),
        "active_slots_no_policy"
    );
    w.set_policy(Some("[]"));
    assert_eq!(
        reason(&w.open("p3", "ETHUSDT", Side::Long, 100.0, None)),
        "active_slots_no_policy"
    );
    w.set_policy(Some(r#"["BTCUSDT","SOLUSDT"]"#));
    assert_eq!(
        reason(&w.open("p4", "ETHUSDT", Side::Long, 100.0, None)),
        "active_slots_not_in_universe"
    );
    assert_eq!(
        reason(&w.open("p5", "SOLUSDT", Side::Long, 100.0, None)),
        "allow"
    );
}

fn s06_regime_sets_desired_slots_in_the_decision(on: &Stores) {
    let w = on.world_market(Config::default(), Market::TrendStrong);
    let d = w.open("r1", "ETHUSDT", Side::Long, 100.0, None);
    assert_eq!(d.record.regime.as_deref(), Some("TREND_STRONG"));
    assert_eq!(d.record.desired_slots, Some(6));
    let w = on.world(Config::default());
    let d = w.open("r2", "ETHUSDT", Side::Long, 100.0, None);
    assert_eq!(d.record.regime.as_deref(), Some("RANGE"));
    assert_eq!(d.record.desired_slots, Some(4));
    let mut capped = Config::default();
    capped.slots.trend_strong = 20;
    capped.slots.hard_cap = 5;
    let w = on.world_market(capped, Market::TrendStrong);
    assert_eq!(
        w.open("r3", "ETHUSDT", Side::Long, 100.0, None)
            .record
            .desired_slots,
        Some(5)
    );
}

fn no_slots() -> Config {
    let mut c = Config::default();
    c.slots.enabled = false;
    c
}

fn s07_fund_caps_block_opens_and_never_closes(on: &Stores) {
    // 10 positions → max_positions (slot accounting off so the fund cap is what answers).
    let w = on.world(no_slots());
    for s in &SYMBOLS[1..11] {
        w.hold(s, Side::Long, 100.0, Some(70.0));
    }
    assert_eq!(
        reason(&w.open("f1", "TRXUSDT", Side::Long, 100.0, None)),
        "max_positions"
    );
    assert_eq!(reason(&w.close("f1c", "ETHUSDT", "PARTIAL_50")), "allow");

    // qty × price = 250 USDT → notional_per_trade_exceeded.
    let w = on.world(no_slots());
    let d = w.open("f2", "ETHUSDT", Side::Long, 250.0, None);
    assert_eq!(reason(&d), "notional_per_trade_exceeded");
    let n = trace_line(&d, "fund_caps")["inputs"]["notional"]
        .as_f64()
        .unwrap();
    assert!((n - 250.0).abs() < 1e-9);

    // 1,900 open + 200 → total_notional_exceeded; a close of that position passes.
    let w = on.world(no_slots());
    w.hold("ETHUSDT", Side::Long, 1900.0, Some(70.0));
    assert_eq!(
        reason(&w.open("f3", "SOLUSDT", Side::Long, 200.0, None)),
        "total_notional_exceeded"
    );
    assert_eq!(
        reason(&w.close("f3c", "ETHUSDT", "FULL_CLOSE_PROPOSED")),
        "allow"
    );
}

fn s07b_cooldown_and_rate_limits_block_opens_and_never_closes(on: &Stores) {
    let mut w = on.world(Config::default());
    assert_eq!(
        reason(&w.open("c1", "ETHUSDT", Side::Long, 100.0, None)),
        "allow"
    );
    w.advance(59);
    assert_eq!(
        reason(&w.open("c2", "ETHUSDT", Side::Long, 100.0, None)),
        "symbol_cooldown"
    );
    w.fill("c1");
    assert_eq!(
        reason(&w.close("c2c", "ETHUSDT", "PARTIAL_25")),
        "allow",
        "closes ignore cooldown"
    );

    // The 3rd open within 5 minutes.
    w.advance(1);
    assert_eq!(
        reason(&w.open("c3", "SOLUSDT", Side::Long, 100.0, None)),
        "allow"
    );
    w.fill("c3");
    w.advance(60);
    assert_eq!(
        reason(&w.open("c4", "BNBUSDT", Side::Long, 100.0, None)),
        "rate_limit_5min"
    );
    // The 4th open within the hour (5 minutes later, the 5-minute window is clear).
    w.advance(300);
    assert_eq!(
        reason(&w.open("c5", "BNBUSDT", Side::Long, 100.0, None)),
        "allow"
    );
    w.advance(300);
    assert_eq!(
        reason(&w.open("c6", "XRPUSDT", Side::Long, 100.0, None)),
        "rate_limit_hour"
    );
    assert_eq!(
        reason(&w.close("c6c", "SOLUSDT", "FULL_CLOSE_PROPOSED")),
        "allow",
        "closes ignore rate limits"
    );
    // An hour after the first open, the window slides.
    w.advance(3600 - 59 - 1 - 60 - 300 - 300 + 1);
    assert_eq!(
        reason(&w.open("c7", "XRPUSDT", Side::Long, 100.0, None)),
        "allow"
    );
}

fn s08_second_close_on_a_symbol_is_refused_until_the_first_result(on: &Stores) {
    let w = on.world(Config::default());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&w.close("x1", "ETHUSDT", "PARTIAL_50")), "allow");
    let second = w.close("x2", "ETHUSDT", "FULL_CLOSE_PROPOSED");
    assert_eq!(reason(&second), "exit_lock_busy_double_close_prevention");
    w.fill("x1");
    assert!(w.state().book.exit_locks.is_empty());
    assert_eq!(
        reason(&w.close("x3", "ETHUSDT", "FULL_CLOSE_PROPOSED")),
        "allow"
    );

    // A close while an expand of the symbol is permitted and unfilled waits for its result.
    let w = on.world(Config::default());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(
        reason(&w.open("e1", "ETHUSDT", Side::Long, 50.0, Some(70.0))),
        "allow"
    );
    let early = w.close("y1", "ETHUSDT", "FULL_CLOSE_PROPOSED");
    assert_eq!(reason(&early), "exit_lock_busy_double_close_prevention");
    assert_eq!(
        trace_line(&early, "exit_lock")["inputs"]["open_in_flight"],
        "e1"
    );
    w.fill("e1");
    assert_eq!(
        reason(&w.close("y2", "ETHUSDT", "FULL_CLOSE_PROPOSED")),
        "allow"
    );
}

fn s09_trading_state_and_kill_score(on: &Stores) {
    let w = on.world(Config::default());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    w.set_state(TradingState::parse_kill_key("1").unwrap());
    assert_eq!(
        reason(&w.close("k1", "ETHUSDT", "FULL_CLOSE_PROPOSED")),
        "kill_switch"
    );
    assert_eq!(
        reason(&w.open("k2", "SOLUSDT", Side::Long, 100.0, None)),
        "kill_switch"
    );
    w.set_state(TradingState::Reducing);
    assert_eq!(reason(&w.close("k3", "ETHUSDT", "PARTIAL_25")), "allow");
    assert_eq!(
        reason(&w.open("k4", "SOLUSDT", Side::Long, 100.0, None)),
        "trading_state_reducing"
    );

    let w = on.world(Config::default());
    let qty = (100.0 / w.mark("SOLUSDT")).to_string();
    let plan = |id: &'static str, k: &'static str| {
        vec![
            ("plan_id", id),
            ("symbol", "SOLUSDT"),
            ("action", "OPEN_LONG"),
            ("decision", "EXECUTE"),
            ("qty", qty.as_str()),
            ("kill_score", k),
        ]
    };
    let scaled = decided(w.submit(&plan("k5", "0.72")));
    let Verdict::Allow { qty: permitted, .. } = scaled.verdict else {
        panic!("{:?}", scaled.verdict)
    };
    assert!(
        (permitted / qty.parse::<f64>().unwrap() - 0.65).abs() < 1e-9,
        "scaled to 65 %"
    );
    let critical = decided(w.submit(&plan("k6", "0.85")));
    assert_eq!(reason(&critical), "kill_score_critical");
    assert_eq!(
        w.state().trading_state,
        TradingState::Reducing,
        "auto-disarm"
    );
    assert_eq!(w.events("TRADING_STATE_CHANGED"), 1);
}

fn s10_intent_drift_in_positions_or_exposure_blocks(on: &Stores) {
    let w = on.world(no_slots());
    for s in &SYMBOLS[1..9] {
        w.hold(s, Side::Long, 100.0, Some(70.0));
    }
    let qty = (100.0 / w.mark("DOTUSDT")).to_string();
    let count = decided(w.submit(&[
        ("plan_id", "d1"),
        ("symbol", "DOTUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("snapshot_position_count", "5"),
    ]));
    assert_eq!(reason(&count), "state_drift_position_count");
    // 8 × 100 USDT on 10,000 equity = 0.08 now; 0.28 at intent → drift 0.20.
    let exposure = decided(w.submit(&[
        ("plan_id", "d2"),
        ("symbol", "DOTUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("snapshot_exposure_pct", "0.28"),
    ]));
    assert_eq!(reason(&exposure), "state_drift_exposure");
    let ok = decided(w.submit(&[
        ("plan_id", "d3"),
        ("symbol", "DOTUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("snapshot_position_count", "7"),
        ("snapshot_exposure_pct", "0.10"),
    ]));
    assert_eq!(reason(&ok), "allow", "{:?}", ok.verdict);
}

fn s11_schema_errors_are_dead_lettered_with_field_and_value(on: &Stores) {
    let w = on.world(Config::default());
    let rejected = |fields: &[(&str, &str)]| match w.submit(fields) {
        quantum_governor::Submission::Rejected(r) => r.to_string(),
        other => panic!("expected a rejection, got {other:?}"),
    };
    let e = rejected(&[
        ("plan_id", "s1"),
        ("symbol", "ETHUSDT"),
        ("action", "FULL_CLOSE_PROPOSED"),
        ("harvest_action", "UPDATE_SL"),
        ("decision", "EXECUTE"),
    ]);
    assert!(
        e.contains("harvest_action")
            && e.contains("action=FULL_CLOSE_PROPOSED, harvest_action=UPDATE_SL"),
        "{e}"
    );
    let e = rejected(&[
        ("plan_id", "s2"),
        ("symbol", "ETHUSDT"),
        ("action", "UNKNOWN"),
        ("decision", "EXECUTE"),
    ]);
    assert!(e.contains("`action` = \"UNKNOWN\""), "{e}");
    let e = rejected(&[
        ("plan_id", "s3"),
        ("symbol", "ETHUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", "NaN"),
    ]);
    assert!(e.contains("`qty` = \"NaN\""), "{e}");
    let st = w.state();
    assert_eq!(st.dead_letters.len(), 3);
    assert!(
        st.dead_letters[2]
            .fields
            .contains(&("qty".to_owned(), "NaN".to_owned())),
        "original fields kept"
    );
    assert!(st.decisions.is_empty(), "a rejected plan gets no decision");
}

/// The incident: a producer wrote `harvest_action`, the consumer read `action`, and every
/// close became a stop-loss tweak. Here the alias is honoured and recorded, and the plan goes
/// down the close path.
fn regression_harvest_action_close_is_never_an_update_sl(on: &Stores) {
    let w = on.world(Config::default());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    let d = decided(w.submit(&[
        ("plan_id", "h1"),
        ("symbol", "ETHUSDT"),
        ("harvest_action", "FULL_CLOSE_PROPOSED"),
        ("decision", "EXECUTE"),
    ]));
    assert_eq!(d.record.action, "FULL_CLOSE_PROPOSED");
    assert_eq!(reason(&d), "allow");
    let schema = trace_line(&d, "schema");
    assert!(schema["inputs"]["action_from"]
        .as_str()
        .unwrap()
        .starts_with("harvest_action"));
    trace_line(&d, "exit_lock");
    assert_eq!(w.state().permits[&pid("h1")].action, "FULL_CLOSE_PROPOSED");
}

fn s12_the_same_plan_id_twice_gets_the_same_decision_once(on: &Stores) {
    let w = on.world(Config::default());
    let first = w.open("twice", "ETHUSDT", Side::Long, 100.0, Some(70.0));
    let again = w.open("twice", "ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert!(again.replayed);
    assert_eq!(first.committed_record(), *again.record);
    assert_eq!(first.verdict, again.verdict);
    let st = w.state();
    assert_eq!(st.book.reservations.len(), 1);
    assert_eq!(st.permits_granted[&pid("twice")], 1);
    assert_eq!(w.events("PLAN_ALLOWED"), 1);
    assert_eq!(st.decision_log.len(), 1);
}

fn s13_missing_exchange_or_short_history_fails_closed(on: &Stores) {
    let mut w = on.world(Config::default());
    w.exchange_down = true;
    assert_eq!(
        reason(&w.open("e1", "ETHUSDT", Side::Long, 100.0, None)),
        "exchange_state_unavailable"
    );
    w.exchange_down = false;
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    // SOL has only 60 bars: 59 returns aligned with ETH's, fewer than the 100 needed.
    let sol = w.klines[&sym("SOLUSDT")].clone();
    w.klines
        .insert(sym("SOLUSDT"), sol[sol.len() - 60..].to_vec());
    let d = w.open("e2", "SOLUSDT", Side::Long, 100.0, None);
    assert_eq!(reason(&d), "market_data_unavailable");
    let Verdict::Block { detail, .. } = &d.verdict else {
        unreachable!()
    };
    assert!(
        detail.contains("share 59 aligned returns; 100 needed"),
        "{detail}"
    );
}

fn opening_against_a_held_side_is_refused_and_same_side_expands(on: &Stores) {
    let w = on.world(Config::default());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(
        reason(&w.open("o1", "ETHUSDT", Side::Short, 100.0, None)),
        "opposite_position_open"
    );
    let expand = w.open("o2", "ETHUSDT", Side::Long, 100.0, None);
    assert_eq!(reason(&expand), "allow");
    assert_eq!(
        w.state().book.slots().len(),
        1,
        "an expansion takes no new slot"
    );
}

fn a_failed_open_or_an_expired_permit_releases_slot_and_capital(on: &Stores) {
    let mut w = on.world(Config::default());
    w.open("r1", "ETHUSDT", Side::Long, 100.0, None);
    let fields: Vec<(String, String)> = [
        ("plan_id", "r1"),
        ("symbol", "ETHUSDT"),
        ("executed", "false"),
        ("action", "OPEN_LONG"),
        ("filled_qty", "0"),
        ("avg_price", "0"),
        ("error", "-2019 Margin is insufficient"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    w.gov.on_result(&fields, &w.inputs(), w.now).unwrap();
    assert!(w.state().book.reservations.is_empty());
    w.advance(61);
    w.open("r2", "SOLUSDT", Side::Long, 100.0, None);
    assert_eq!(w.state().book.reservations.len(), 1);
    w.advance(60);
    w.gov.tick(w.now).unwrap();
    let st = w.state();
    assert!(st.book.reservations.is_empty() && st.permits.is_empty());
    assert_eq!(w.events("RESERVATION_EXPIRED"), 1);
}

fn a_filled_open_occupies_its_slot_and_results_are_idempotent(on: &Stores) {
    let w = on.world(Config::default());
    w.open("f1", "ETHUSDT", Side::Long, 100.0, Some(77.0));
    w.fill("f1");
    let st = w.state();
    assert!(st.book.reservations.is_empty());
    let p = &st.book.positions[&sym("ETHUSDT")];
    assert_eq!(p.entry_score, Some(77.0));
    let qty = p.qty;
    // The same result again changes nothing (the permit is gone, so build it by hand).
    let fields: Vec<(String, String)> = [
        ("plan_id", "f1"),
        ("symbol", "ETHUSDT"),
        ("executed", "true"),
        ("action", "OPEN_LONG"),
        ("filled_qty", "5"),
        ("avg_price", "10"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    w.gov.on_result(&fields, &w.inputs(), w.now).unwrap();
    assert_eq!(w.state().book.positions[&sym("ETHUSDT")].qty, qty);
}

fn a_batch_decides_exactly_as_one_by_one(on: &Stores) {
    let mut cfg = Config::default();
    cfg.cadence.max_exec_per_hour = 100;
    cfg.cadence.max_exec_per_5min = 100;
    let batch_world = on.world(cfg.clone());
    let single_world = on.world(cfg);
    batch_world.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    single_world.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    // Opens that fill the slots, one refused by the policy, a duplicate id, an opposite side,
    // a close, and more opens once the slots are full.
    let specs: [(&str, &str, &str); 9] = [
        ("b1", "SOLUSDT", "OPEN_LONG"),
        ("b2", "XRPUSDT", "OPEN_SHORT"),
        ("b3", "NOTLISTEDUSDT", "OPEN_LONG"),
        ("b1", "SOLUSDT", "OPEN_LONG"),
        ("b4", "ETHUSDT", "OPEN_SHORT"),
        ("b5", "ETHUSDT", "PARTIAL_50"),
        ("b6", "BNBUSDT", "OPEN_LONG"),
        ("b7", "ADAUSDT", "OPEN_LONG"),
        ("b8", "DOGEUSDT", "OPEN_LONG"),
    ];
    let fields = |w: &World, (id, symbol, action): (&str, &str, &str)| -> Vec<(String, String)> {
        let mut f = vec![
            ("plan_id".to_owned(), id.to_owned()),
            ("symbol".to_owned(), symbol.to_owned()),
            ("action".to_owned(), action.to_owned()),
            ("decision".to_owned(), "EXECUTE".to_owned()),
        ];
        if action.starts_with("OPEN") {
            let mark = w
                .klines
                .get(&sym(symbol))
                .map_or(1.0, |k| k.last().unwrap().close);
            f.push(("qty".to_owned(), (100.0 / mark).to_string()));
        }
        f
    };
    let plans: Vec<governor_core::Plan> = specs
        .iter()
        .map(|s| governor_core::Plan::parse(&fields(&batch_world, *s)).unwrap())
        .collect();
    let batch = batch_world
        .gov
        .decide_batch(&plans, &batch_world.inputs(), batch_world.now);
    let one_by_one: Vec<_> = plans
        .iter()
        .map(|p| {
            single_world
                .gov
                .decide_plan(p, &single_world.inputs(), single_world.now)
        })
        .collect();
    let summary = |s: &quantum_governor::Submission| match s {
        quantum_governor::Submission::Decided { decision, fence } => {
            (reason(decision), fence.is_some())
        }
        other => panic!("{other:?}"),
    };
    let got: Vec<_> = batch.iter().map(summary).collect();
    let want: Vec<_> = one_by_one.iter().map(summary).collect();
    assert_eq!(got, want);
    // Gate by gate too: the batch decides on one portfolio view until a decision changes the
    // book, and every trace is the one a fresh read gives.
    let traces = |subs: &[quantum_governor::Submission]| -> Vec<String> {
        subs.iter()
            .map(|s| match s {
                quantum_governor::Submission::Decided { decision, .. } => decision.trace.to_json(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(traces(&batch), traces(&one_by_one));
    assert_eq!(
        want.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        [
            "allow",
            "allow",
            "active_slots_not_in_universe",
            "allow",
            "opposite_position_open",
            "allow",
            "allow",
            "slots_full",
            "slots_full"
        ]
    );
    assert!(
        !want[3].1,
        "the duplicate id is a replay, not a second decision"
    );
    let (a, b) = (batch_world.state(), single_world.state());
    assert_eq!(a.decisions.len(), b.decisions.len());
    assert_eq!(a.book.slots(), b.book.slots());
}

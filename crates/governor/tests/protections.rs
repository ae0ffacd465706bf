//! The protections, each at and around its threshold with hand-computed numbers, and each in
//! shadow mode changing nothing but the record — on the embedded store and on Redis.

#[macro_use]
mod support;

use governor_core::config::{Config, GateMode};
use governor_core::reason::BlockReason;
use governor_core::types::{Side, TradingState};
use support::*;

on_both_stores!(
    drawdown_halts_at_just_over_ten_percent_and_resumes_by_itself,
    drawdown_without_auto_resume_waits_for_the_operator,
    drawdown_in_shadow_records_and_halts_nothing,
    loss_streak_locks_a_symbol_after_three_losses_for_six_hours,
    a_global_loss_streak_locks_every_open,
    price_collar_refuses_a_limit_more_than_two_percent_from_the_mark,
    side_slots_cap_one_side_only,
    submit_throttle_allows_n_per_second,
    shadow_gates_change_nothing_but_the_record,
);

/// Limits that would otherwise get in the way of the protection under test.
fn config() -> Config {
    let mut cfg = Config::default();
    cfg.cadence.symbol_cooldown_secs = 0;
    cfg.cadence.max_exec_per_hour = 1_000;
    cfg.cadence.max_exec_per_5min = 1_000;
    cfg.correlation.max = 1.0;
    cfg.funds.max_total_notional_usdt = 1e9;
    cfg.slots.base = 10;
    cfg.slots.chop = 10;
    // The tests move the clock by hours over fixed klines.
    cfg.regime.max_kline_age_secs = 7 * 86_400;
    cfg
}

fn observe(w: &World) {
    w.gov
        .observe(&w.inputs(), w.now)
        .expect("the store answers");
}

fn shadow_of(d: &governor_core::Decision) -> Vec<&'static str> {
    d.record.shadow.iter().map(|r| r.code()).collect()
}

fn drawdown_halts_at_just_over_ten_percent_and_resumes_by_itself(on: &Stores) {
    let mut w = on.world(config());
    w.hold("SOLUSDT", Side::Long, 100.0, Some(70.0));
    observe(&w); // the peak: 10,000
                 // Exactly 10 % below the peak is not over the limit.
    w.equity = 9_000.0;
    let at_limit = w.open("dd-1", "ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&at_limit), "allow");
    let line = trace_line(&at_limit, "drawdown_halt");
    assert!((line["inputs"]["drawdown"].as_f64().unwrap() - 0.10).abs() < 1e-12);
    // 8,999 is 10.01 % below: the open is refused and trading goes to REDUCING.
    w.equity = 8_999.0;
    let over = w.open("dd-2", "ADAUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&over), "drawdown_halt");
    let st = w.state();
    assert_eq!(st.trading_state, TradingState::Reducing);
    let halt = st
        .book
        .halt
        .clone()
        .expect("the governor's own halt is recorded");
    assert_eq!(halt.reason, BlockReason::DrawdownHalt);
    assert_eq!(w.events("TRADING_STATE_CHANGED"), 1);
    // While halted: opens are refused with the halt's reason, closes pass.
    let next = w.open("dd-3", "XRPUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&next), "drawdown_halt");
    assert_eq!(
        reason(&w.close("dd-close", "SOLUSDT", "FULL_CLOSE_PROPOSED")),
        "allow"
    );

    // Recovered to 9,600 (4 % below 10,000 < 5 %) but the hour's pause is not over yet.
    w.equity = 9_600.0;
    w.advance(3_599);
    observe(&w);
    assert_eq!(w.state().trading_state, TradingState::Reducing);
    w.advance(1);
    observe(&w);
    assert_eq!(
        w.state().trading_state,
        TradingState::Active,
        "resumed by itself"
    );
    assert!(w.state().book.halt.is_none());
    assert_eq!(
        reason(&w.open("dd-4", "XRPUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
}

fn drawdown_without_auto_resume_waits_for_the_operator(on: &Stores) {
    let mut cfg = config();
    cfg.drawdown.auto_resume = false;
    let mut w = on.world(cfg);
    observe(&w);
    w.equity = 8_000.0; // 20 % below
    observe(&w); // the monitor halts without any plan
    assert_eq!(w.state().trading_state, TradingState::Reducing);
    w.equity = 9_900.0; // 1 % below: would resume, but auto-resume is off
    w.advance(7_200);
    observe(&w);
    assert_eq!(w.state().trading_state, TradingState::Reducing);
    // The operator resumes: the drawdown is acknowledged and the peak starts again.
    w.equity = 8_000.0;
    w.set_state(TradingState::Active);
    observe(&w);
    let st = w.state();
    assert!(st.book.halt.is_none());
    assert_eq!(st.trading_state, TradingState::Active);
    assert_eq!(
        reason(&w.open("op-1", "ETHUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
}

fn drawdown_in_shadow_records_and_halts_nothing(on: &Stores) {
    let mut cfg = config();
    cfg.gates.drawdown_halt = GateMode::Shadow;
    let mut w = on.world(cfg);
    observe(&w);
    w.equity = 8_000.0;
    observe(&w);
    let d = w.open("sh-1", "ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&d), "allow");
    assert_eq!(shadow_of(&d), ["drawdown_halt"]);
    assert_eq!(trace_line(&d, "drawdown_halt")["outcome"], "shadow");
    let st = w.state();
    assert_eq!(st.trading_state, TradingState::Active);
    assert!(st.book.halt.is_none());
    assert_eq!(w.events("TRADING_STATE_CHANGED"), 0);
    assert_eq!(
        st.decisions[&pid("sh-1")].shadow,
        [BlockReason::DrawdownHalt]
    );
}

/// Opens `symbol` 2 % above its mark and closes it at the mark: a loss of 2 USDT on 100.
fn lose_on(w: &World, symbol: &str, n: usize) {
    let entry = w.mark(symbol) * 1.02;
    w.hold_at(symbol, Side::Long, 100.0, entry, Some(70.0), 2);
    let id = format!("loss-{symbol}-{n}");
    assert_eq!(
        reason(&w.close(&id, symbol, "FULL_CLOSE_PROPOSED")),
        "allow"
    );
    w.fill(&id);
}

fn loss_streak_locks_a_symbol_after_three_losses_for_six_hours(on: &Stores) {
    let mut w = on.world(config());
    lose_on(&w, "ETHUSDT", 1);
    lose_on(&w, "ETHUSDT", 2);
    let closes = w.state().book.closes.clone();
    assert_eq!(closes.len(), 2);
    assert!(closes.iter().all(|c| c.pnl < 0.0), "{closes:?}");
    // Two losses in a row: still open.
    let two = w.open("ls-2", "ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&two), "allow");
    assert_eq!(
        trace_line(&two, "loss_streak")["inputs"]["symbol_streak"],
        2
    );
    w.advance(120); // the reservation is gone; ETH is free again
    w.tick();
    lose_on(&w, "ETHUSDT", 3);
    let three = w.open("ls-3", "ETHUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&three), "symbol_loss_streak");
    // Another symbol is not locked (the global streak needs 5).
    assert_eq!(
        reason(&w.open("ls-sol", "SOLUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
    // The lock lasts six hours from the last loss.
    w.advance(6 * 3_600 - 1);
    assert_eq!(
        reason(&w.open("ls-4", "ETHUSDT", Side::Long, 100.0, Some(70.0))),
        "symbol_loss_streak"
    );
    w.advance(1);
    assert_eq!(
        reason(&w.open("ls-5", "ETHUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
}

fn a_global_loss_streak_locks_every_open(on: &Stores) {
    let mut cfg = config();
    cfg.loss_streak.global_losses = 3;
    let w = on.world(cfg);
    lose_on(&w, "ETHUSDT", 1);
    lose_on(&w, "SOLUSDT", 1);
    // A winning close breaks the streak: BNB bought 2 % below its mark.
    let entry = w.mark("BNBUSDT") * 0.98;
    w.hold_at("BNBUSDT", Side::Long, 100.0, entry, Some(70.0), 2);
    w.close("win-1", "BNBUSDT", "FULL_CLOSE_PROPOSED");
    w.fill("win-1");
    lose_on(&w, "XRPUSDT", 1);
    lose_on(&w, "ADAUSDT", 1);
    assert_eq!(
        reason(&w.open("g-1", "DOGEUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
    lose_on(&w, "LTCUSDT", 1);
    let d = w.open("g-2", "DOTUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&d), "loss_streak_global");
    assert_eq!(trace_line(&d, "loss_streak")["inputs"]["global_streak"], 3);
}

fn price_collar_refuses_a_limit_more_than_two_percent_from_the_mark(on: &Stores) {
    let w = on.world(config());
    let mark = w.mark("ETHUSDT");
    let qty = (100.0 / mark).to_string();
    let with_price = |id: &str, price: f64| {
        let price = price.to_string();
        decided(w.submit(&[
            ("plan_id", id),
            ("symbol", "ETHUSDT"),
            ("action", "OPEN_LONG"),
            ("decision", "EXECUTE"),
            ("qty", qty.as_str()),
            ("price", price.as_str()),
        ]))
    };
    assert_eq!(
        reason(&with_price("pc-1", mark * 1.0201)),
        "price_out_of_band"
    );
    assert_eq!(
        reason(&with_price("pc-2", mark * 0.9799)),
        "price_out_of_band"
    );
    assert_eq!(
        reason(&with_price("pc-3", mark * 1.02)),
        "allow",
        "2 % is within"
    );
    let no_price = w.open("pc-4", "SOLUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&no_price), "allow");
    assert!(trace_line(&no_price, "price_collar")["note"]
        .as_str()
        .unwrap()
        .contains("never refused"));
}

fn side_slots_cap_one_side_only(on: &Stores) {
    let mut cfg = config();
    cfg.side_slots.max_long = Some(2);
    let w = on.world(cfg);
    w.hold("SOLUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(
        reason(&w.open("ss-1", "BNBUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
    let third = w.open("ss-2", "ADAUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(reason(&third), "side_slots_full");
    assert_eq!(trace_line(&third, "side_slots")["inputs"]["side_slots"], 2);
    assert_eq!(
        reason(&w.open("ss-3", "ADAUSDT", Side::Short, 100.0, Some(70.0))),
        "allow"
    );
    assert_eq!(
        reason(&w.open("ss-4", "SOLUSDT", Side::Long, 50.0, Some(70.0))),
        "allow",
        "expanding takes no slot"
    );
}

fn submit_throttle_allows_n_per_second(on: &Stores) {
    let mut cfg = config();
    cfg.throttle.max_permits_per_sec = 3;
    let mut w = on.world(cfg);
    for (i, s) in ["ETHUSDT", "SOLUSDT", "BNBUSDT"].iter().enumerate() {
        assert_eq!(
            reason(&w.open(&format!("t-{i}"), s, Side::Long, 100.0, Some(70.0))),
            "allow"
        );
    }
    assert_eq!(
        reason(&w.open("t-3", "XRPUSDT", Side::Long, 100.0, Some(70.0))),
        "submit_throttle"
    );
    w.now = governor_core::time::Timestamp(w.now.millis() + 999);
    assert_eq!(
        reason(&w.open("t-4", "XRPUSDT", Side::Long, 100.0, Some(70.0))),
        "submit_throttle"
    );
    w.now = governor_core::time::Timestamp(w.now.millis() + 1);
    assert_eq!(
        reason(&w.open("t-5", "XRPUSDT", Side::Long, 100.0, Some(70.0))),
        "allow"
    );
    // Closes are never throttled.
    w.hold("ADAUSDT", Side::Long, 100.0, Some(70.0));
    w.hold("DOGEUSDT", Side::Long, 100.0, Some(70.0));
    w.hold("LTCUSDT", Side::Long, 100.0, Some(70.0));
    for s in ["ADAUSDT", "DOGEUSDT", "LTCUSDT"] {
        assert_eq!(
            reason(&w.close(&format!("c-{s}"), s, "FULL_CLOSE_PROPOSED")),
            "allow"
        );
    }
}

fn shadow_gates_change_nothing_but_the_record(on: &Stores) {
    let mut cfg = config();
    cfg.side_slots.max_long = Some(0);
    cfg.gates.side_slots = GateMode::Shadow;
    cfg.gates.price_collar = GateMode::Shadow;
    cfg.throttle.max_permits_per_sec = 1;
    cfg.gates.submit_throttle = GateMode::Shadow;
    cfg.gates.correlation = GateMode::Off;
    let w = on.world(cfg);
    let mark = w.mark("ETHUSDT");
    let (qty, price) = ((100.0 / mark).to_string(), (mark * 1.05).to_string());
    let d = decided(w.submit(&[
        ("plan_id", "shadow-1"),
        ("symbol", "ETHUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("price", price.as_str()),
    ]));
    assert_eq!(reason(&d), "allow");
    assert_eq!(shadow_of(&d), ["price_out_of_band", "side_slots_full"]);
    let second = w.open("shadow-2", "SOLUSDT", Side::Long, 100.0, Some(70.0));
    assert_eq!(
        reason(&second),
        "allow",
        "the shadow throttle let the second open through"
    );
    assert_eq!(shadow_of(&second), ["submit_throttle", "side_slots_full"]);
    assert_eq!(trace_line(&second, "correlation")["outcome"], "n/a");
    assert_eq!(trace_line(&second, "correlation")["inputs"]["mode"], "off");
    // Both opens hold their slots and reservations exactly as enforced allows would.
    let st = w.state();
    assert_eq!(st.book.reservations.len(), 2);
    assert_eq!(st.decisions[&pid("shadow-2")].shadow.len(), 2);
}

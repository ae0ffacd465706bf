//! The governor never permits an open that a move of its required distance would liquidate,
//! nor one that takes the account's margin ratio over its limit: checked over random books,
//! equities, prices, leverages and volatilities, in cross and isolated margin, against a
//! statement of the rule that does not use the liquidation-price formula — at the price
//! `min_distance` against the position, the margin balance backing it must still exceed the
//! maintenance margin.

use governor_core::book::Book;
use governor_core::config::{GateMode, MarginMode};
use governor_core::market::brackets::{parse_binance, LeverageBrackets};
use governor_core::market::{RegimeFeatures, SymbolMarket};
use governor_core::snapshot::{
    CapitalState, ExchangeClock, ExchangePosition, ExchangeState, Policy, Snapshot,
};
use governor_core::types::{Side, Symbol, TradingState};
use governor_core::{decide, Config, Plan, Timestamp, Verdict};
use proptest::prelude::*;
use proptest::test_runner::{Config as Runner, TestRunner};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

const OTHERS: [&str; 4] = ["ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"];
const NOW: Timestamp = Timestamp(1_767_225_600_000);

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn btc_tiers() -> LeverageBrackets {
    let all = parse_binance(include_str!("../../../data/klines/leverage-brackets.json")).unwrap();
    all[&sym("BTCUSDT")].clone()
}

#[derive(Clone, Debug)]
struct Case {
    isolated: bool,
    equity: f64,
    /// (symbol index, long, notional at the mark, entry, mark)
    others: Vec<(usize, bool, f64, f64, f64)>,
    long: bool,
    notional: f64,
    leverage: u32,
    atr_pct: f64,
}

fn case() -> impl Strategy<Value = Case> {
    let other = (
        0..OTHERS.len(),
        any::<bool>(),
        100.0..100_000.0,
        50.0..150.0,
        50.0..150.0,
    );
    (
        any::<bool>(),
        500.0..50_000.0,
        prop::collection::vec(other, 0..4),
        any::<bool>(),
        10.0..200_000.0,
        1u32..=125,
        0.001..0.03,
    )
        .prop_map(
            |(isolated, equity, others, long, notional, leverage, atr_pct)| Case {
                isolated,
                equity,
                others,
                long,
                notional,
                leverage,
                atr_pct,
            },
        )
}

fn market(price: f64, atr_pct: f64, tiers: &LeverageBrackets) -> Arc<SymbolMarket> {
    Arc::new(SymbolMarket {
        last_bar_close: NOW,
        last_close: price,
        bars: 300,
        features: Some(RegimeFeatures {
            bars: 300,
            close: price,
            ema20: price,
            ema50: price,
            atr14: atr_pct * price,
            trend: 0.0,
            atr_pct,
            momentum_consistency: 0.5,
        }),
        returns: Vec::new(),
        brackets: Some(tiers.clone()),
    })
}

/// Every gate that does not guard liquidation is off, so that the open reaches them.
fn config(isolated: bool) -> Config {
    let mut cfg = Config::default();
    cfg.slots.enabled = false;
    cfg.liquidation.margin_mode = if isolated {
        MarginMode::Isolated
    } else {
        MarginMode::Cross
    };
    let g = &mut cfg.gates;
    for mode in [
        &mut g.policy,
        &mut g.drift,
        &mut g.kill_score,
        &mut g.cooldown,
        &mut g.rate_limit,
        &mut g.correlation,
        &mut g.margin,
        &mut g.fund_caps,
        &mut g.capital,
        &mut g.drawdown_halt,
        &mut g.loss_streak,
        &mut g.price_collar,
        &mut g.leverage_cap,
        &mut g.side_slots,
        &mut g.submit_throttle,
    ] {
        *mode = GateMode::Off;
    }
    cfg
}

#[test]
fn no_permitted_open_is_liquidated_within_its_distance_nor_over_the_account_ratio() {
    let tiers = btc_tiers();
    let allowed = Cell::new(0usize);
    let refused_by_liquidation = Cell::new(0usize);
    let mut runner = TestRunner::new(Runner::with_cases(3_000));
    runner
        .run(&case(), |c| {
            let cfg = config(c.isolated);
            let mut positions = BTreeMap::new();
            let mut market_map = BTreeMap::new();
            market_map.insert(sym("BTCUSDT"), market(100.0, c.atr_pct, &tiers));
            for &(i, long, notional, entry, mark) in &c.others {
                positions.insert(
                    sym(OTHERS[i]),
                    ExchangePosition {
                        side: if long { Side::Long } else { Side::Short },
                        qty: notional / mark,
                        entry_price: entry,
                        mark_price: mark,
                        leverage: 10,
                    },
                );
                market_map.insert(sym(OTHERS[i]), market(mark, 0.01, &tiers));
            }
            let snap = Snapshot {
                trading_state: TradingState::Active,
                policy: Policy::from_field(Some(r#"["BTCUSDT"]"#)),
                prior: None,
                book: Book::default().into(),
                exchange: Some(ExchangeState {
                    equity_usdt: c.equity,
                    positions: positions.clone(),
                    clock: ExchangeClock::Local,
                }),
                market: market_map.into(),
                correlations: None,
                capital: CapitalState::default(),
            };
            let qty = c.notional / 100.0;
            let plan = Plan::parse(&[
                ("plan_id", "prop-1"),
                ("symbol", "BTCUSDT"),
                ("action", if c.long { "OPEN_LONG" } else { "OPEN_SHORT" }),
                ("decision", "EXECUTE"),
                ("qty", qty.to_string().as_str()),
                ("leverage", c.leverage.to_string().as_str()),
            ])
            .unwrap();
            let d = decide(&plan, &snap, &cfg, NOW);
            let Verdict::Allow { qty: permitted, .. } = d.verdict else {
                if matches!(
                    d.verdict.reason().map(|r| r.code()),
                    Some("liquidation_too_close" | "account_margin_ratio")
                ) {
                    refused_by_liquidation.set(refused_by_liquidation.get() + 1);
                }
                return Ok(());
            };
            allowed.set(allowed.get() + 1);
            let lq = &cfg.liquidation;
            let min_distance = lq
                .min_distance_pct
                .max(lq.min_distance_sigmas * c.atr_pct * 24f64.sqrt());
            let side = if c.long { 1.0 } else { -1.0 };
            // The price just short of the required distance against the new position.
            let p = 100.0 * (1.0 - side * min_distance * (1.0 - 1e-9));
            let own_mm = |price: f64| tiers.maintenance_margin(permitted * price).unwrap();
            let others_mm: f64 = positions
                .values()
                .map(|x| tiers.maintenance_margin(x.qty * x.mark_price).unwrap())
                .sum();
            let move_pnl = (p - 100.0) * permitted * side;
            let (balance, needed) = if c.isolated {
                (
                    permitted * 100.0 / f64::from(c.leverage) + move_pnl,
                    own_mm(p),
                )
            } else {
                (c.equity + move_pnl, others_mm + own_mm(p))
            };
            prop_assert!(
                balance > needed - 1e-6 * needed.max(1.0),
                "liquidated within {min_distance}: balance {balance} ≤ maintenance {needed}"
            );
            let ratio = (others_mm + own_mm(100.0)) / c.equity;
            prop_assert!(
                ratio <= lq.max_account_margin_ratio * (1.0 + 1e-9),
                "account margin ratio {ratio} over {}",
                lq.max_account_margin_ratio
            );
            Ok(())
        })
        .unwrap();
    // The property must have been put to the test both ways.
    assert!(allowed.get() > 300, "only {} opens allowed", allowed.get());
    assert!(
        refused_by_liquidation.get() > 300,
        "only {} refused by the liquidation gates",
        refused_by_liquidation.get()
    );
}

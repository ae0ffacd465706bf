//! `decide` for an open on an account with 10 positions: correlation against each (100 aligned
//! returns), regime from cached indicators, every symbol with BTCUSDT's real leverage brackets
//! (the liquidation gates project the account), every gate passing so every gate runs.
//! Run: `cargo bench -p governor-core --bench decide`; its last two lines are `decide`'s ratio
//! to one Pearson of 100 returns, measured in alternating rounds of the same run, and the same
//! with the portfolio view shared across calls (as a batch shares it).

use criterion::{criterion_group, Criterion};
use governor_core::book::{Book, LedgerPosition};
use governor_core::decide::decide_on;
use governor_core::gates::portfolio::SharedView;
use governor_core::market::brackets::parse_binance;
use governor_core::market::correlation::CorrelationCache;
use governor_core::market::{Kline, SymbolMarket, BAR_MS};
use governor_core::snapshot::{CapitalState, ExchangePosition, ExchangeState, Policy, Snapshot};
use governor_core::time::Timestamp;
use governor_core::types::{Side, Symbol, TradingState};
use governor_core::{decide, Config, Plan, Verdict};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

const BARS: usize = 300;

fn series(seed: u64) -> Vec<Kline> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut price = 100.0;
    (0..BARS)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.01;
            let open = price;
            price *= 1.0 + r;
            Kline {
                open_time: Timestamp(i as i64 * BAR_MS),
                open,
                high: open.max(price) * 1.001,
                low: open.min(price) * 0.999,
                close: price,
                volume: 1.0,
            }
        })
        .collect()
}

fn setup() -> (Plan, Snapshot, Config, Timestamp) {
    let names: Vec<String> = (0..11).map(|i| format!("SYM{i}USDT")).collect();
    let symbols: Vec<Symbol> = names.iter().map(|n| Symbol::parse(n).unwrap()).collect();
    let btc = Symbol::parse("BTCUSDT").unwrap();
    let tiers = parse_binance(include_str!("../../../data/klines/leverage-brackets.json")).unwrap()
        [&btc]
        .clone();
    let summary = |seed| {
        let m = SymbolMarket::from_klines(&series(seed), 200).unwrap();
        Arc::new(m.with_brackets(Some(tiers.clone())))
    };
    let mut market = BTreeMap::new();
    market.insert(btc, summary(999));
    for (i, s) in symbols.iter().enumerate() {
        market.insert(s.clone(), summary(i as u64 + 1));
    }
    let mut book = Book::default();
    let mut positions = BTreeMap::new();
    for s in &symbols[..10] {
        let mark = market[s].last_close;
        book.positions.insert(
            s.clone(),
            LedgerPosition {
                side: Side::Long,
                qty: 1.0,
                entry_price: mark,
                leverage: 5,
                opened_at: Timestamp(0),
                entry_score: Some(60.0),
                entry_fees: 0.0,
            },
        );
        positions.insert(
            s.clone(),
            ExchangePosition {
                side: Side::Long,
                qty: 1.0,
                entry_price: mark,
                mark_price: mark,
                leverage: 5,
            },
        );
    }
    let mut cfg = Config::default();
    cfg.slots.base = 11;
    cfg.slots.chop = 11;
    cfg.slots.hard_cap = 11;
    cfg.funds.max_open_positions = 11;
    cfg.funds.max_total_notional_usdt = 1e6;
    let universe = serde_json::to_string(&names).unwrap();
    let correlations = Some(Arc::new(CorrelationCache::build(&market, 100)));
    let snap = Snapshot {
        trading_state: TradingState::Active,
        policy: Policy::from_field(Some(&universe)),
        prior: None,
        book: book.into(),
        exchange: Some(ExchangeState {
            equity_usdt: 100_000.0,
            positions,
            clock: governor_core::snapshot::ExchangeClock::Local,
        }),
        market: market.into(),
        correlations,
        capital: CapitalState::default(),
    };
    let candidate = &names[10];
    let qty = (150.0 / snap.market[&symbols[10]].last_close).to_string();
    let plan = Plan::parse(&[
        ("plan_id", "bench-1"),
        ("symbol", candidate.as_str()),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
        ("score", "70"),
    ])
    .unwrap();
    (plan, snap, cfg, Timestamp(BARS as i64 * BAR_MS))
}

fn bench_decide(c: &mut Criterion) {
    let (plan, snap, cfg, now) = setup();
    let d = decide(&plan, &snap, &cfg, now);
    assert!(
        matches!(d.verdict, Verdict::Allow { .. }),
        "the benchmark must pass every gate: {:?}",
        d.verdict
    );
    assert_eq!(
        d.trace
            .lines()
            .iter()
            .filter(|l| l.gate == "correlation")
            .count(),
        1
    );
    c.bench_function("decide_open_10_positions_corr100", |b| {
        b.iter(|| {
            decide(
                black_box(&plan),
                black_box(&snap),
                black_box(&cfg),
                black_box(now),
            )
        })
    });
    // As a batch decides the plans before one changes the book: the portfolio view built once.
    let view = SharedView::of(&snap);
    c.bench_function("decide_open_shared_view", |b| {
        b.iter(|| {
            decide_on(
                black_box(&plan),
                black_box(&snap),
                black_box(&view),
                black_box(&cfg),
                black_box(now),
            )
        })
    });
}

criterion_group!(benches, bench_decide);

fn bench_parts(c: &mut Criterion) {
    let (plan, snap, cfg, now) = setup();
    let d = decide(&plan, &snap, &cfg, now);
    c.bench_function("trace_to_json", |b| {
        b.iter(|| black_box(&d.trace).to_json())
    });
    let a = &snap.market.values().next().unwrap().returns;
    let bb = &snap.market.values().nth(1).unwrap().returns;
    c.bench_function("aligned_corr", |b| {
        b.iter(|| {
            governor_core::market::correlation::aligned_correlation(
                black_box(a),
                black_box(bb),
                100,
            )
        })
    });
    c.bench_function("portfolio_build", |b| {
        b.iter(|| governor_core::gates::portfolio::Portfolio::build(black_box(&snap)))
    });
}
criterion_group!(parts, bench_parts);

/// `decide` against one Pearson of 100 returns, as a ratio measured in one run: rounds that
/// alternate a block of each, so that the machine's drift (2× over a day here) moves both sides
/// of every round alike. Prints the median round and the range, for `decide` and for
/// `decide_on` with a portfolio view shared across calls (a batch's plans before one changes
/// the book).
fn ratio_to_aligned_corr() {
    let (plan, snap, cfg, now) = setup();
    let a = &snap.market.values().next().unwrap().returns;
    let b = &snap.market.values().nth(1).unwrap().returns;
    let per_call = |calls: u32, f: &mut dyn FnMut()| {
        let started = std::time::Instant::now();
        for _ in 0..calls {
            f();
        }
        started.elapsed().as_secs_f64() / f64::from(calls)
    };
    let mut corr_once = || {
        black_box(governor_core::market::correlation::aligned_correlation(
            black_box(a),
            black_box(b),
            100,
        ));
    };
    let view = SharedView::of(&snap);
    let mut decide_once = || {
        black_box(decide(
            black_box(&plan),
            black_box(&snap),
            black_box(&cfg),
            black_box(now),
        ));
    };
    let mut decide_on_view = || {
        black_box(decide_on(
            black_box(&plan),
            black_box(&snap),
            black_box(&view),
            black_box(&cfg),
            black_box(now),
        ));
    };
    let cases: [(&str, &mut dyn FnMut()); 2] = [
        ("decide_open_10_positions_corr100", &mut decide_once),
        ("decide_open_shared_view", &mut decide_on_view),
    ];
    for (name, decide_one) in cases {
        // Warm-up, then 21 rounds of about 0.1 s each.
        per_call(20_000, decide_one);
        per_call(200_000, &mut corr_once);
        let mut ratios: Vec<f64> = (0..21)
            .map(|_| per_call(25_000, decide_one) / per_call(400_000, &mut corr_once))
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name} / aligned_corr, same run, 21 alternating rounds: median {:.1}x (min {:.1}x, max {:.1}x)",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
}

fn main() {
    benches();
    parts();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking (not when `cargo test --benches` runs each once), and unless a
    // filter names other benchmarks.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "--bench")
        && (filters.is_empty() || filters.iter().any(|f| f.contains("ratio")))
    {
        ratio_to_aligned_corr();
    }
}

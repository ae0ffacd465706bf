//! The heat gate with hand-computed portfolios (k = 8, COLD < 0.25 ≤ WARM < 0.65 ≤ HOT).

use super::*;
use crate::config::{Config, HeatRung};
use crate::plan::CloseKind;

const FULL: HarvestAction = HarvestAction::Close(CloseKind::Full);
const P75: HarvestAction = HarvestAction::Close(CloseKind::Partial75);
const P50: HarvestAction = HarvestAction::Close(CloseKind::Partial50);
const P25: HarvestAction = HarvestAction::Close(CloseKind::Partial25);

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn market_sigma(value: f64) -> Result<Sigma, String> {
    Ok(Sigma {
        value,
        source: SigmaSource::MarketState,
        fallback_reason: None,
    })
}

/// One position of `notional` at sigma 4 % on 10,000 of equity.
fn one_position(notional: f64) -> HeatInput {
    HeatInput {
        equity: Some(10_000.0),
        positions: vec![PositionRisk {
            symbol: sym("BTCUSDT"),
            notional,
            sigma: market_sigma(0.04),
        }],
    }
}

fn heat_of(input: &HeatInput) -> HeatReading {
    portfolio_heat(input, &HeatConfig::default(), &mut Trace::default()).unwrap()
}

#[test]
fn heat_and_bucket_around_the_warm_edge() {
    // 8,900 × 0.04 / 10,000 = 0.0356; 1 − e^(−8 × 0.0356) = 1 − e^(−0.2848) = 0.24784.
    let below = heat_of(&one_position(8_900.0));
    assert!((below.heat - 0.24784).abs() < 1e-5, "{below:?}");
    assert_eq!(below.bucket, Bucket::Cold);
    // 9,000 × 0.04 / 10,000 = 0.036; 1 − e^(−0.288) = 0.25024.
    let above = heat_of(&one_position(9_000.0));
    assert!((above.heat - 0.25024).abs() < 1e-5, "{above:?}");
    assert_eq!(above.bucket, Bucket::Warm);
    let cfg = HeatConfig::default();
    assert_eq!(Bucket::of(0.25, &cfg), Bucket::Warm, "0.25 itself is WARM");
    assert_eq!(Bucket::of(0.249_999, &cfg), Bucket::Cold);
}

#[test]
fn heat_and_bucket_around_the_hot_edge() {
    // 32,000 × 0.04 / 10,000 = 0.128; 1 − e^(−1.024) = 0.64084.
    let below = heat_of(&one_position(32_000.0));
    assert!((below.heat - 0.64084).abs() < 1e-5, "{below:?}");
    assert_eq!(below.bucket, Bucket::Warm);
    // 33,000 × 0.04 / 10,000 = 0.132; 1 − e^(−1.056) = 0.65216.
    let above = heat_of(&one_position(33_000.0));
    assert!((above.heat - 0.65216).abs() < 1e-5, "{above:?}");
    assert_eq!(above.bucket, Bucket::Hot);
    let cfg = HeatConfig::default();
    assert_eq!(Bucket::of(0.65, &cfg), Bucket::Hot, "0.65 itself is HOT");
    assert_eq!(Bucket::of(0.649_999, &cfg), Bucket::Warm);
}

#[test]
fn the_incident_portfolio_runs_hot_and_full_closes_become_half_closes() {
    // $118,000 over 17 positions on $13,661 (8.64x), each at 3 % daily sigma:
    // load = 118,000 × 0.03 / 13,661 = 0.25913; 1 − e^(−2.07305) = 0.87420.
    let each = 118_000.0 / 17.0;
    let input = HeatInput {
        equity: Some(13_661.0),
        positions: (0..17)
            .map(|i| PositionRisk {
                symbol: sym(&format!("SYM{i}USDT")),
                notional: each,
                sigma: market_sigma(0.03),
            })
            .collect(),
    };
    let c = calibrate(FULL, &input, &HeatConfig::default());
    let r = c.heat.clone().unwrap();
    assert!((r.exposure - 8.6377).abs() < 1e-3, "{r:?}");
    assert!((r.heat - 0.87420).abs() < 1e-5, "{r:?}");
    assert_eq!(r.bucket, Bucket::Hot);
    assert_eq!(c.calibrated, P50);
    assert!(c.downgraded());
    assert_eq!(c.reason(), "heat_hot");
    assert_eq!(
        c.trace.lines().len(),
        17 + 2,
        "a line per position, heat, ladder"
    );
}

#[test]
fn the_default_ladder_is_designs() {
    let cfg = HeatConfig::default();
    let at =
        |notional: f64, a: HarvestAction| calibrate(a, &one_position(notional), &cfg).calibrated;
    // COLD: unchanged.
    for a in HarvestAction::ALL {
        assert_eq!(at(1_000.0, a), a);
    }
    // WARM: only the full close steps down.
    assert_eq!(at(20_000.0, FULL), P75);
    assert_eq!(at(20_000.0, P75), P75);
    assert_eq!(at(20_000.0, P50), P50);
    // HOT: one more rung.
    assert_eq!(at(50_000.0, FULL), P50);
    assert_eq!(at(50_000.0, P75), P50);
    assert_eq!(at(50_000.0, P50), P25);
    assert_eq!(at(50_000.0, P25), P25);
    // Never into UPDATE_SL or HOLD, and those two pass untouched.
    for n in [1_000.0, 20_000.0, 50_000.0] {
        for a in [FULL, P75, P50, P25] {
            assert!(at(n, a).close_fraction() > 0.0);
        }
        assert_eq!(at(n, HarvestAction::Hold), HarvestAction::Hold);
        assert_eq!(at(n, HarvestAction::UpdateSl), HarvestAction::UpdateSl);
    }
}

#[test]
fn the_ladder_comes_from_configuration() {
    let toml = r#"
        [heat]
        warm_at = 0.5
        [heat.hot]
        FULL_CLOSE_PROPOSED = "PARTIAL_25"
        PARTIAL_75 = "PARTIAL_25"
        PARTIAL_50 = "PARTIAL_25"
        PARTIAL_25 = "HOLD"
    "#;
    let cfg = Config::load(Some(toml), &[]).unwrap().heat;
    assert_eq!(
        cfg.warm,
        HeatConfig::default().warm,
        "unset rungs keep defaults"
    );
    // 20,000 × 0.04 / 10,000 = 0.08 → heat 0.47271: WARM by default, COLD with warm_at 0.5.
    assert_eq!(
        calibrate(FULL, &one_position(20_000.0), &cfg).calibrated,
        FULL
    );
    assert_eq!(
        calibrate(FULL, &one_position(50_000.0), &cfg).calibrated,
        P25
    );
    assert_eq!(
        calibrate(P25, &one_position(50_000.0), &cfg).calibrated,
        HarvestAction::Hold,
        "the ladder may say HOLD; only the ladder may"
    );
    let bad = Config::load(Some("[heat.warm]\nFULL_CLOSE_PROPOSED = \"CLOSE\""), &[]).unwrap_err();
    assert_eq!(bad[0].key, "heat.warm.FULL_CLOSE_PROPOSED", "{bad:?}");
    let crossed = Config::load(Some("[heat]\nwarm_at = 0.7\nhot_at = 0.6"), &[]).unwrap_err();
    assert_eq!(crossed[0].key, "heat.warm_at", "{crossed:?}");
    let unknown_mode = Config::load(None, &[("P26_MODE".into(), "loud".into())]).unwrap_err();
    assert_eq!(unknown_mode[0].env.as_deref(), Some("P26_MODE"));
    let one = Config::load(Some("[heat.hot]\nPARTIAL_25 = \"HOLD\""), &[]).unwrap();
    assert_eq!(
        one.heat.hot,
        HeatRung {
            partial_25: HarvestAction::Hold,
            ..HeatConfig::default().hot
        },
        "one rung set, the others keep DESIGN's"
    );
}

#[test]
fn sigma_comes_from_the_market_state_else_from_atr_and_the_trace_says_which() {
    let s = resolve_sigma(Some("0.035"), Some(0.01)).unwrap();
    assert_eq!((s.value, s.source), (0.035, SigmaSource::MarketState));
    // ATR 1.2 % of price per hour → 0.012 × √24 = 0.058788 per day.
    let s = resolve_sigma(None, Some(0.012)).unwrap();
    assert_eq!(s.source, SigmaSource::AtrDerived);
    assert!((s.value - 0.058788).abs() < 1e-6);
    let s = resolve_sigma(Some("NaN"), Some(0.012)).unwrap();
    assert_eq!(s.source, SigmaSource::AtrDerived);
    assert!(s.fallback_reason.unwrap().contains("\"NaN\""));
    let none = resolve_sigma(Some("-1"), None).unwrap_err();
    assert!(none.contains("\"-1\"") && none.contains("no ATR"), "{none}");

    let input = HeatInput {
        equity: Some(10_000.0),
        positions: vec![PositionRisk {
            symbol: sym("ETHUSDT"),
            notional: 5_000.0,
            sigma: resolve_sigma(None, Some(0.012)),
        }],
    };
    let json = calibrate(FULL, &input, &HeatConfig::default())
        .trace
        .to_json();
    assert!(json.contains(r#""sigma_source":"atr""#), "{json}");
}

#[test]
fn a_portfolio_whose_heat_is_unknown_is_never_calibrated() {
    let mut input = one_position(50_000.0);
    input.positions.push(PositionRisk {
        symbol: sym("ETHUSDT"),
        notional: 1_000.0,
        sigma: Err("no marketstate sigma and no ATR from market data".into()),
    });
    let c = calibrate(FULL, &input, &HeatConfig::default());
    assert_eq!(c.calibrated, FULL, "left as proposed");
    assert!(!c.is_calibrated());
    assert_eq!(c.reason(), "heat_unavailable");
    assert!(c.heat.unwrap_err().contains("ETHUSDT"));
    let no_equity = HeatInput {
        equity: None,
        ..one_position(1.0)
    };
    assert!(calibrate(FULL, &no_equity, &HeatConfig::default())
        .heat
        .unwrap_err()
        .contains("equity"));
}

#[test]
fn an_empty_portfolio_is_cold() {
    let empty = HeatInput {
        equity: Some(1_000.0),
        positions: Vec::new(),
    };
    assert_eq!(heat_of(&empty).heat, 0.0);
    assert_eq!(heat_of(&empty).bucket, Bucket::Cold);
}

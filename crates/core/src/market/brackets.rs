//! Binance's leverage brackets: per symbol, the notional tiers that fix the highest leverage
//! an order may use and the maintenance margin a position must keep. They are market data like
//! the klines (fetched from `GET /fapi/v1/leverageBracket`, or bundled beside the recorded
//! klines), checked once when read, and looked up by binary search on every decision.

use crate::types::Symbol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One tier: `notional_floor ≤ notional < notional_cap`.
#[derive(Copy, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bracket {
    /// Binance's tier number (1 is the smallest notional).
    pub bracket: u32,
    /// The highest leverage a position of this notional may use.
    pub initial_leverage: u32,
    /// The tier's upper bound (exclusive), in USDT of notional at the mark.
    pub notional_cap: f64,
    /// The tier's lower bound (inclusive).
    pub notional_floor: f64,
    /// Maintenance margin rate (MMR).
    pub maint_margin_ratio: f64,
    /// Maintenance amount: what the tier's rate over-charges below its floor.
    pub cum: f64,
}

/// A symbol's tiers, checked: at least one, the first from 0, each starting where the one
/// before ends, every number finite, rates in `[0, 1)`, leverage at least 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Bracket>", into = "Vec<Bracket>")]
pub struct LeverageBrackets {
    tiers: Arc<[Bracket]>,
}

impl TryFrom<Vec<Bracket>> for LeverageBrackets {
    type Error = String;

    fn try_from(tiers: Vec<Bracket>) -> Result<Self, String> {
        LeverageBrackets::new(tiers)
    }
}

impl From<LeverageBrackets> for Vec<Bracket> {
    fn from(b: LeverageBrackets) -> Self {
        b.tiers.to_vec()
    }
}

impl LeverageBrackets {
    /// Checks `tiers` (sorted by notional as Binance lists them); the error names the tier
    /// and the field.
    pub fn new(tiers: Vec<Bracket>) -> Result<Self, String> {
        if tiers.is_empty() {
            return Err("no tiers".to_owned());
        }
        let mut floor = 0.0;
        for t in &tiers {
            let at = format!("tier {}", t.bracket);
            for (field, value) in [
                ("notionalFloor", t.notional_floor),
                ("notionalCap", t.notional_cap),
                ("maintMarginRatio", t.maint_margin_ratio),
                ("cum", t.cum),
            ] {
                if !value.is_finite() {
                    return Err(format!("{at}: {field} {value} is not a finite number"));
                }
            }
            if t.notional_floor != floor {
                return Err(format!(
                    "{at}: notionalFloor {} should be {floor} (where the tier before ends)",
                    t.notional_floor
                ));
            }
            if t.notional_cap <= t.notional_floor {
                return Err(format!(
                    "{at}: notionalCap {} is not above notionalFloor {}",
                    t.notional_cap, t.notional_floor
                ));
            }
            if !(0.0..1.0).contains(&t.maint_margin_ratio) {
                return Err(format!(
                    "{at}: maintMarginRatio {} is not in [0, 1)",
                    t.maint_margin_ratio
                ));
            }
            if t.cum < 0.0 {
                return Err(format!("{at}: cum {} is negative", t.cum));
            }
            if t.initial_leverage == 0 {
                return Err(format!("{at}: initialLeverage 0"));
            }
            floor = t.notional_cap;
        }
        Ok(LeverageBrackets {
            tiers: tiers.into(),
        })
    }

    /// The tier holding `notional` (`floor ≤ notional < cap`), with its index; `None` for a
    /// notional that is negative, not a number, or at or above the last tier's cap (Binance
    /// takes no position that large).
    pub fn tier_for(&self, notional: f64) -> Option<(usize, &Bracket)> {
        if !(notional >= 0.0) {
            return None;
        }
        let i = self.tiers.partition_point(|t| t.notional_cap <= notional);
        self.tiers.get(i).map(|t| (i, t))
    }

    /// Every tier, from the smallest notional up.
    pub fn tiers(&self) -> &[Bracket] {
        &self.tiers
    }

    /// Maintenance margin of a position of `notional`: `notional × MMR − cum` of its tier.
    pub fn maintenance_margin(&self, notional: f64) -> Option<f64> {
        self.tier_for(notional)
            .map(|(_, t)| notional * t.maint_margin_ratio - t.cum)
    }

    /// The largest notional any tier takes.
    pub fn max_notional(&self) -> f64 {
        self.tiers.last().map_or(0.0, |t| t.notional_cap)
    }
}

/// Every symbol's tiers.
pub type BracketTable = BTreeMap<Symbol, LeverageBrackets>;

/// One symbol as `GET /fapi/v1/leverageBracket` answers it (other fields are ignored).
#[derive(Deserialize)]
struct SymbolBrackets {
    symbol: String,
    brackets: Vec<Bracket>,
}

/// Reads the body of `GET /fapi/v1/leverageBracket` (a JSON array of `{symbol, brackets}`),
/// which is also the format of the bundled file. Any bad symbol or tier is an error that names
/// it: a table is taken whole or not at all.
pub fn parse_binance(json: &str) -> Result<BracketTable, String> {
    let raw: Vec<SymbolBrackets> =
        serde_json::from_str(json).map_err(|e| format!("not a leverage bracket list: {e}"))?;
    let mut table = BracketTable::new();
    for s in raw {
        let symbol = Symbol::parse(&s.symbol).map_err(|e| format!("symbol {:?}: {e}", s.symbol))?;
        let tiers = LeverageBrackets::new(s.brackets).map_err(|e| format!("{symbol}: {e}"))?;
        if table.insert(symbol.clone(), tiers).is_some() {
            return Err(format!("{symbol}: listed twice"));
        }
    }
    Ok(table)
}

/// Tiers for the core's own tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Bracket, LeverageBrackets};

    /// BTCUSDT's first three tiers as Binance lists them (the repository's bracket data).
    pub fn btc() -> LeverageBrackets {
        LeverageBrackets::new(vec![
            tier(1, 150, 0.0, 300_000.0, 0.004, 0.0),
            tier(2, 100, 300_000.0, 800_000.0, 0.005, 300.0),
            tier(3, 75, 800_000.0, 3_000_000.0, 0.0065, 1_500.0),
        ])
        .expect("valid tiers")
    }

    /// One tier.
    pub fn tier(n: u32, lev: u32, floor: f64, cap: f64, mmr: f64, cum: f64) -> Bracket {
        Bracket {
            bracket: n,
            initial_leverage: lev,
            notional_cap: cap,
            notional_floor: floor,
            maint_margin_ratio: mmr,
            cum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{btc, tier};
    use super::*;

    #[test]
    fn the_tier_is_the_one_whose_floor_is_reached_and_whose_cap_is_not() {
        let b = btc();
        let cases = [
            (0.0, Some(1)),
            (299_999.9, Some(1)),
            // Exactly at the cap: the next tier (floor ≤ notional < cap).
            (300_000.0, Some(2)),
            (300_000.1, Some(2)),
            (2_999_999.0, Some(3)),
            (3_000_000.0, None),
            (-1.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
        ];
        for (notional, tier) in cases {
            assert_eq!(
                b.tier_for(notional).map(|(_, t)| t.bracket),
                tier,
                "{notional}"
            );
        }
    }

    #[test]
    fn maintenance_margin_is_continuous_across_a_tier_boundary() {
        let b = btc();
        // 300,000 × 0.004 − 0 = 1,200 just below; 300,000 × 0.005 − 300 = 1,200 at the floor.
        assert!((b.maintenance_margin(299_999.99).unwrap() - 1_200.0).abs() < 1e-3);
        assert_eq!(b.maintenance_margin(300_000.0), Some(1_200.0));
        // 400,000 × 0.005 − 300 = 1,700.
        assert_eq!(b.maintenance_margin(400_000.0), Some(1_700.0));
    }

    #[test]
    fn bad_tiers_are_refused_with_the_tier_and_the_field() {
        let cases: [(Vec<Bracket>, &str); 6] = [
            (vec![], "no tiers"),
            (
                vec![tier(1, 20, 10.0, 100.0, 0.01, 0.0)],
                "tier 1: notionalFloor 10 should be 0",
            ),
            (
                vec![
                    tier(1, 20, 0.0, 100.0, 0.01, 0.0),
                    tier(2, 10, 150.0, 200.0, 0.02, 1.0),
                ],
                "tier 2: notionalFloor 150 should be 100",
            ),
            (
                vec![tier(1, 20, 0.0, 100.0, f64::NAN, 0.0)],
                "tier 1: maintMarginRatio NaN is not a finite number",
            ),
            (
                vec![tier(1, 20, 0.0, 100.0, 1.0, 0.0)],
                "tier 1: maintMarginRatio 1 is not in [0, 1)",
            ),
            (
                vec![tier(1, 0, 0.0, 100.0, 0.01, 0.0)],
                "tier 1: initialLeverage 0",
            ),
        ];
        for (tiers, want) in cases {
            let err = LeverageBrackets::new(tiers).unwrap_err();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn binances_answer_is_read_whole_or_refused_naming_the_symbol() {
        let ok = r#"[{"symbol":"ETHUSDT","notionalCoef":1.5,"brackets":[
            {"bracket":1,"initialLeverage":75,"notionalCap":10000,"notionalFloor":0,
             "maintMarginRatio":0.0065,"cum":0.0}]}]"#;
        let table = parse_binance(ok).expect("valid");
        let eth = &table[&Symbol::parse("ETHUSDT").unwrap()];
        assert_eq!(
            eth.tier_for(9_999.0).map(|(_, t)| t.initial_leverage),
            Some(75)
        );
        let bad = ok.replace("\"cum\":0.0", "\"cum\":-5");
        assert_eq!(
            parse_binance(&bad).unwrap_err(),
            "ETHUSDT: tier 1: cum -5 is negative"
        );
        let missing = ok.replace("\"maintMarginRatio\":0.0065,", "");
        assert!(parse_binance(&missing)
            .unwrap_err()
            .contains("missing field `maintMarginRatio`"));
    }
}

//! Where Binance would liquidate a position, by its published USDⓈ-M formula (one-way mode):
//!
//! ```text
//! LP = (WB − TMM1 + UPNL1 + cum − side × qty × entry) / (qty × MMR − side × qty)
//! ```
//!
//! `WB − TMM1 + UPNL1` is the position's collateral: in cross margin the wallet balance less the
//! other positions' maintenance margin plus their unrealized PnL; in isolated margin the
//! position's own margin. `MMR` and `cum` are those of the tier that holds the notional *at the
//! liquidation price*, so the price is recomputed until the tier it lands in is the one it was
//! computed with. And the account's margin ratio, Binance's own line (liquidation at 100 %):
//! total maintenance margin over margin balance.

use crate::market::brackets::{Bracket, LeverageBrackets};
use crate::types::Side;

/// A position's liquidation point.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Liquidation {
    /// The mark at which it is liquidated; `None` when no positive price does (a long whose
    /// collateral covers its whole value).
    pub price: Option<f64>,
    /// The tier the price was computed with (the one holding the notional at that price).
    pub tier: Bracket,
}

impl Liquidation {
    /// How far the mark is from the liquidation price, as a fraction of the mark, positive on
    /// the safe side (a long above it, a short below it); infinite when there is none.
    pub fn distance(&self, side: Side, mark: f64) -> f64 {
        match self.price {
            Some(lp) => side.sign() * (mark - lp) / mark,
            None => f64::INFINITY,
        }
    }
}

/// The liquidation price of `qty` (> 0) on `side` entered at `entry`, backed by `collateral`
/// (cross: `WB − TMM1 + UPNL1`; isolated: the position's margin). `None` when the notional is
/// beyond every tier or an input is not finite.
pub fn liquidation_price(
    tiers: &LeverageBrackets,
    side: Side,
    qty: f64,
    entry: f64,
    collateral: f64,
) -> Option<Liquidation> {
    if !(qty > 0.0 && entry > 0.0 && collateral.is_finite()) {
        return None;
    }
    let s = side.sign();
    let (mut index, mut tier) = tiers.tier_for(qty * entry).map(|(i, t)| (i, *t))?;
    let price_with = |t: &Bracket| {
        (collateral + t.cum - s * qty * entry) / (qty * t.maint_margin_ratio - s * qty)
    };
    // Maintenance margin is continuous in the notional, so this settles within the number of
    // tiers; the bound only guards against a table that is not.
    for _ in 0..=tiers.tiers().len() {
        let lp = price_with(&tier);
        if lp <= 0.0 {
            return Some(Liquidation { price: None, tier });
        }
        match tiers.tier_for(qty * lp) {
            Some((i, t)) if i != index => {
                index = i;
                tier = *t;
            }
            _ => break,
        }
    }
    let lp = price_with(&tier);
    Some(Liquidation {
        price: (lp > 0.0).then_some(lp),
        tier,
    })
}

/// Binance's account margin ratio: total maintenance margin over margin balance (wallet
/// balance + unrealized PnL). Infinite when the margin balance is not positive.
pub fn account_margin_ratio(total_maintenance: f64, margin_balance: f64) -> f64 {
    if margin_balance > 0.0 {
        total_maintenance / margin_balance
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::brackets::testing::btc;

    fn lp(side: Side, qty: f64, entry: f64, collateral: f64) -> Liquidation {
        liquidation_price(&btc(), side, qty, entry, collateral).expect("within the tiers")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.005
    }

    // The four cases worked by hand from the formula (BTCUSDT tier 1: < 300,000, MMR 0.004,
    // cum 0; tier 2: 300,000–800,000, MMR 0.005, cum 300).

    #[test]
    fn isolated_long_5x() {
        // (200 + 0 − 0.01 × 100,000) / (0.01 × 0.004 − 0.01) = −800 / −0.00996 = 80,321.29
        let l = lp(Side::Long, 0.01, 100_000.0, 200.0);
        assert!(close(l.price.unwrap(), 80_321.29), "{l:?}");
        assert!((l.distance(Side::Long, 100_000.0) - 0.1968).abs() < 1e-4);
        assert_eq!(l.tier.bracket, 1);
    }

    #[test]
    fn isolated_short_5x() {
        // (200 + 0 + 0.01 × 100,000) / (0.01 × 0.004 + 0.01) = 1,200 / 0.01004 = 119,521.91
        let l = lp(Side::Short, 0.01, 100_000.0, 200.0);
        assert!(close(l.price.unwrap(), 119_521.91), "{l:?}");
        assert!((l.distance(Side::Short, 100_000.0) - 0.1952).abs() < 1e-4);
    }

    #[test]
    fn cross_long_with_other_positions() {
        // WB 1,000 − TMM1 10 + UPNL1 (−50) = 940; (940 − 10,000) / (0.0004 − 0.1) = 90,963.86
        let l = lp(Side::Long, 0.1, 100_000.0, 1_000.0 - 10.0 - 50.0);
        assert!(close(l.price.unwrap(), 90_963.86), "{l:?}");
    }

    #[test]
    fn isolated_long_10x_in_tier_2_stays_in_tier_2_at_its_liquidation_price() {
        // (40,000 + 300 − 400,000) / (4 × 0.005 − 4) = −359,700 / −3.98 = 90,376.88; the
        // notional there, 4 × 90,376.88 = 361,507.5, is still in tier 2.
        let l = lp(Side::Long, 4.0, 100_000.0, 40_000.0);
        assert!(close(l.price.unwrap(), 90_376.88), "{l:?}");
        assert_eq!(l.tier.bracket, 2);
    }

    #[test]
    fn a_price_that_falls_into_a_lower_tier_is_recomputed_with_that_tier() {
        // 3.1 BTC at 100,000 (310,000: tier 2), isolated margin 31,000.
        // Tier 2: (31,000 + 300 − 310,000) / (3.1 × 0.005 − 3.1) = 278,700 / 3.0845 = 90,355.0,
        // notional 280,100.6: tier 1. Tier 1: (31,000 − 310,000) / (3.1 × 0.004 − 3.1)
        // = 279,000 / 3.0876 = 90,361.45, notional 280,120.5: tier 1, settled.
        let l = lp(Side::Long, 3.1, 100_000.0, 31_000.0);
        assert_eq!(l.tier.bracket, 1);
        assert!(close(l.price.unwrap(), 90_361.45), "{l:?}");
    }

    #[test]
    fn a_long_backed_by_more_than_its_value_has_no_liquidation_price() {
        // (2,000 − 1,000) / (…) < 0: no positive price liquidates it.
        let l = lp(Side::Long, 0.01, 100_000.0, 2_000.0);
        assert_eq!(l.price, None);
        assert_eq!(l.distance(Side::Long, 100_000.0), f64::INFINITY);
    }

    #[test]
    fn inputs_that_are_not_finite_or_not_positive_have_no_answer() {
        let t = btc();
        for (qty, entry, coll) in [
            (0.0, 100.0, 10.0),
            (f64::NAN, 100.0, 10.0),
            (1.0, f64::NAN, 10.0),
            (1.0, 100.0, f64::NAN),
            (1.0, 100.0, f64::INFINITY),
            (1_000.0, 100_000.0, 1.0), // 100 M notional: beyond these three tiers
        ] {
            assert_eq!(liquidation_price(&t, Side::Long, qty, entry, coll), None);
        }
    }

    #[test]
    fn the_account_ratio_is_maintenance_over_margin_balance() {
        assert_eq!(account_margin_ratio(50.0, 1_000.0), 0.05);
        assert_eq!(account_margin_ratio(50.0, 0.0), f64::INFINITY);
        assert_eq!(account_margin_ratio(50.0, -10.0), f64::INFINITY);
    }
}

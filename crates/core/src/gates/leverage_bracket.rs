//! Leverage bracket: an open whose leverage is above what Binance allows for the symbol's
//! position after the fill (the tier of its notional: `initialLeverage`) is refused
//! `leverage_above_bracket`. Binance would reject the order, or the position would sit at a
//! leverage its tier does not allow; a notional beyond the last tier is refused the same way.
//! Closes are never refused here.

use super::common::{refuse, Candidate, Ctx, Refusal};
use super::projection::Projection;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// The gate (opens only, after sizing), on the projection of the open: the symbol's post-fill
/// notional is what it already holds on the open's side (positions and reservations) plus the
/// open, valued at the open's price.
pub fn check(
    _ctx: &Ctx<'_>,
    cand: &Candidate,
    projected: &Projection,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let notional = projected.notional;
    trace
        .line("leverage_bracket", Outcome::Pass)
        .num("post_fill_notional", notional)
        .int("leverage", i64::from(cand.leverage));
    let Some(tier) = projected.tier else {
        let why = format!(
            "{} notional {notional:.2} after the fill is beyond its last tier ({:.0})",
            cand.symbol,
            cand.brackets.max_notional()
        );
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::LeverageAboveBracket, why),
        ));
    };
    trace
        .last()
        .int("tier", i64::from(tier.bracket))
        .int("tier_max_leverage", i64::from(tier.initial_leverage));
    if cand.leverage > tier.initial_leverage {
        let why = format!(
            "{} at {}x: notional {notional:.2} is in tier {}, which allows at most {}x",
            cand.symbol, cand.leverage, tier.bracket, tier.initial_leverage
        );
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::LeverageAboveBracket, why),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, candidate, plan, position, run, sym, NOW};
    use crate::gates::portfolio::Portfolio;
    use crate::gates::projection::project;
    use crate::types::Side;

    /// BTCUSDT tiers (tier 1 < 300,000 up to 150x; tier 2 < 800,000 up to 100x; tier 3
    /// < 3,000,000 up to 75x) with `held` of BTC long at 100 held first.
    fn open(held_notional: f64, notional: f64, leverage: u32) -> Result<(), BlockReason> {
        let mut book = Book::default();
        if held_notional > 0.0 {
            book.positions.insert(
                sym("BTCUSDT"),
                position(Side::Long, held_notional / 100.0, 100.0),
            );
        }
        let snap = test_snapshot(book, Some(account(1e9)));
        let p = plan("BTCUSDT", "OPEN_LONG", &[]);
        let view = Portfolio::build(&snap).expect("an account");
        let cand = candidate("BTCUSDT", Side::Long, notional, leverage);
        run(&p, &snap, &Config::default(), NOW, |ctx, t| {
            check(ctx, &cand, &project(ctx, &cand, &view), t)
        })
    }

    #[test]
    fn the_tier_of_the_post_fill_notional_caps_the_leverage() {
        let above = Err(BlockReason::LeverageAboveBracket);
        let cases = [
            // (held, open, leverage, expected)
            (0.0, 299_999.0, 150, Ok(())),
            (0.0, 299_999.0, 151, above),
            // Exactly at tier 1's cap: tier 2, 100x at most.
            (0.0, 300_000.0, 100, Ok(())),
            (0.0, 300_000.0, 101, above),
            // The held position counts: 200,000 + 100,000 is in tier 2.
            (200_000.0, 100_000.0, 101, above),
            (200_000.0, 99_999.0, 150, Ok(())),
            // 2,999,999 is the last tier here (75x); 3,000,000 is beyond every tier.
            (0.0, 2_999_999.0, 75, Ok(())),
            (0.0, 3_000_000.0, 1, above),
        ];
        for (held, notional, leverage, expected) in cases {
            assert_eq!(
                open(held, notional, leverage),
                expected,
                "held {held}, open {notional} at {leverage}x"
            );
        }
    }
}

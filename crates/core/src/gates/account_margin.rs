//! Account margin ratio: Binance's own line, total maintenance margin over margin balance (the
//! account is liquidated at 100 %). An open that would take the ratio above
//! `liquidation.max_account_margin_ratio` is refused `account_margin_ratio`, however far its
//! own position is from liquidation: many positions far apart can still sink the account
//! together. Closes are never refused here.

use super::common::{fits, refuse, Ctx, Refusal};
use super::projection::{Projection, Unprojectable};
use crate::liquidation::account_margin_ratio;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// The gate (opens only), on the projection of the open.
pub fn check(
    ctx: &Ctx<'_>,
    projected: Result<&Projection, &Unprojectable>,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let max = ctx.cfg.liquidation.max_account_margin_ratio;
    trace
        .line("account_margin_ratio", Outcome::Pass)
        .num("max_ratio", max);
    let p = match projected {
        Ok(p) => p,
        Err(u) => return Err(refuse(trace, u.refusal())),
    };
    let before = account_margin_ratio(p.maintenance_before, p.margin_balance);
    let after = account_margin_ratio(p.maintenance_after, p.margin_balance);
    trace
        .last()
        .num("margin_balance", p.margin_balance)
        .num("ratio_before", before)
        .num("ratio_after", after);
    if !fits(after, max) {
        let why = format!(
            "account margin ratio {:.2}% → {:.2}% after the open: at most {:.2}%",
            before * 100.0,
            after * 100.0,
            max * 100.0
        );
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::AccountMarginRatio, why),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, candidate, market, plan, run, sym, NOW};
    use crate::gates::portfolio::Portfolio;
    use crate::gates::projection::project;
    use crate::snapshot::ExchangePosition;
    use crate::types::Side;

    /// An open of `notional` BTCUSDT (tier 1: MMR 0.004) on an account of equity 1,000,
    /// holding `eth` USDT of ETHUSDT (same tiers) when not zero.
    fn open(notional: f64, eth: f64) -> Result<(), BlockReason> {
        let mut acct = account(1_000.0);
        if eth > 0.0 {
            acct.positions.insert(
                sym("ETHUSDT"),
                ExchangePosition {
                    side: Side::Short,
                    qty: eth / 100.0,
                    entry_price: 100.0,
                    mark_price: 100.0,
                    leverage: 20,
                },
            );
        }
        let mut snap = test_snapshot(Default::default(), Some(acct));
        snap.market_mut()
            .insert(sym("ETHUSDT"), market(100.0, vec![]));
        let view = Portfolio::build(&snap).expect("an account");
        let cand = candidate("BTCUSDT", Side::Long, notional, 20);
        let p = plan("BTCUSDT", "OPEN_LONG", &[]);
        run(&p, &snap, &Config::default(), NOW, |ctx, t| {
            check(ctx, project(ctx, &cand, &view).complete(), t)
        })
    }

    #[test]
    fn the_ratio_after_the_open_may_reach_the_5_pct_default_and_no_more() {
        let above = Err(BlockReason::AccountMarginRatio);
        let cases = [
            // 12,500 × 0.004 = 50 = 5 % of 1,000.
            (12_500.0, 0.0, Ok(())),
            (12_600.0, 0.0, above),
            // ETH 2,500 × 0.004 = 10 already: 10 + 10,000 × 0.004 = 50.
            (10_000.0, 2_500.0, Ok(())),
            (10_100.0, 2_500.0, above),
        ];
        for (notional, eth, expected) in cases {
            assert_eq!(open(notional, eth), expected, "{notional} with ETH {eth}");
        }
    }
}

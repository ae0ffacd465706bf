//! Sizing (the `market_data` gate): the open's quantity after the kill-score scale, the price
//! it is valued at (its own limit price, else the market's last close), its leverage and the
//! symbol's leverage brackets. An open with no price at all, or on a symbol whose brackets are
//! not known, is refused `market_data_unavailable`: nothing is valued at zero, and no margin is
//! computed from a guessed tier.

use super::common::{refuse, Candidate, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};
use crate::types::Side;

/// Sizes the open on `side` with the kill score's `qty_scale`.
pub fn size(
    ctx: &Ctx<'_>,
    side: Side,
    qty_scale: f64,
    trace: &mut Trace,
) -> Result<Candidate, Refusal> {
    let plan = ctx.plan;
    let stated = plan.stated_price();
    let summary = ctx.snap.market.get(&plan.symbol);
    let market = summary.map(|m| m.last_close);
    trace
        .line("sizing", Outcome::Pass)
        .opt_num("plan_qty", plan.qty)
        .num("qty_scale", qty_scale)
        .opt_num("stated_price", stated)
        .opt_num("market_price", market);
    let Some(price) = stated.or(market) else {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::MarketDataUnavailable,
                format!(
                    "no price for {}: the plan states none and no klines",
                    plan.symbol
                ),
            ),
        ));
    };
    let Some(brackets) = summary.and_then(|m| m.brackets.clone()) else {
        trace.last().num("price", price).flag("brackets", false);
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::MarketDataUnavailable,
                format!(
                    "no leverage brackets for {}: its margin tiers are unknown",
                    plan.symbol
                ),
            ),
        ));
    };
    let qty = plan.qty.unwrap_or(0.0) * qty_scale;
    let leverage = plan.leverage.unwrap_or(ctx.cfg.funds.default_leverage);
    let notional = qty * price;
    trace
        .last()
        .num("qty", qty)
        .num("price", price)
        .num("notional", notional)
        .int("leverage", i64::from(leverage));
    Ok(Candidate {
        symbol: plan.symbol.clone(),
        side,
        qty,
        price,
        notional,
        leverage,
        brackets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{market, plan, run, sym, NOW};

    #[test]
    fn the_stated_price_wins_over_the_market_and_the_scale_shrinks_the_qty() {
        let mut snap = test_snapshot(Default::default(), None);
        snap.market_mut()
            .insert(sym("BTCUSDT"), market(100.0, vec![]));
        let cfg = Config::default();
        let priced = plan("BTCUSDT", "OPEN_LONG", &[("qty", "2"), ("price", "110")]);
        let c = run(&priced, &snap, &cfg, NOW, |ctx, t| {
            size(ctx, Side::Long, 0.5, t)
        })
        .expect("sized");
        // 2 × 0.5 = 1 at the plan's 110; the default leverage 5.
        assert_eq!(
            (c.qty, c.price, c.notional, c.leverage),
            (1.0, 110.0, 110.0, 5)
        );
        let market_order = plan("BTCUSDT", "OPEN_LONG", &[("qty", "2"), ("leverage", "3")]);
        let c = run(&market_order, &snap, &cfg, NOW, |ctx, t| {
            size(ctx, Side::Long, 1.0, t)
        })
        .expect("sized");
        assert_eq!(
            (c.qty, c.price, c.notional, c.leverage),
            (2.0, 100.0, 200.0, 3)
        );
    }

    #[test]
    fn an_open_with_no_price_anywhere_is_refused() {
        let snap = test_snapshot(Default::default(), None);
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        let got = run(&open, &snap, &Config::default(), NOW, |ctx, t| {
            size(ctx, Side::Long, 1.0, t)
        });
        assert_eq!(got, Err(BlockReason::MarketDataUnavailable));
    }

    #[test]
    fn an_open_on_a_symbol_without_leverage_brackets_is_refused_naming_them() {
        let mut snap = test_snapshot(Default::default(), None);
        let mut m = (*market(100.0, vec![])).clone();
        m.brackets = None;
        snap.market_mut()
            .insert(sym("BTCUSDT"), std::sync::Arc::new(m));
        let open = plan("BTCUSDT", "OPEN_LONG", &[("price", "100")]);
        let (got, line) = crate::gates::common::testing::traced(
            &open,
            &snap,
            &Config::default(),
            NOW,
            |ctx, t| size(ctx, Side::Long, 1.0, t),
        );
        assert_eq!(got.err(), Some(BlockReason::MarketDataUnavailable));
        let note = line.note.as_deref().unwrap_or_default();
        assert!(note.contains("no leverage brackets for BTCUSDT"), "{note}");
    }
}

//! Sizing (the `market_data` gate): the open's quantity after the kill-score scale, the price
//! it is valued at (its own limit price, else the market's last close) and its leverage. An
//! open with no price at all is refused `market_data_unavailable`: nothing is valued at zero.

use super::common::{refuse, Candidate, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};
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
    let market = ctx.snap.market.get(&plan.symbol).map(|m| m.last_close);
    let line = TraceLine::new("sizing", Outcome::Pass)
        .opt_num("plan_qty", plan.qty)
        .num("qty_scale", qty_scale)
        .opt_num("stated_price", stated)
        .opt_num("market_price", market);
    let Some(price) = stated.or(market) else {
        return Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::MarketDataUnavailable,
                format!(
                    "no price for {}: the plan states none and no klines",
                    plan.symbol
                ),
            ),
        ));
    };
    let qty = plan.qty.unwrap_or(0.0) * qty_scale;
    let leverage = plan.leverage.unwrap_or(ctx.cfg.funds.default_leverage);
    let notional = qty * price;
    trace.push(
        line.num("qty", qty)
            .num("price", price)
            .num("notional", notional)
            .int("leverage", i64::from(leverage)),
    );
    Ok(Candidate {
        symbol: plan.symbol.clone(),
        side,
        qty,
        price,
        notional,
        leverage,
    })
}

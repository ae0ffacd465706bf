//! Price collar: an open whose limit price (`price`) is more than `max_deviation` from the
//! current mark is refused (`price_out_of_band`). A plan without a limit price is valued at the
//! mark and never refused here. The mark is the market data's last close, else the exchange's
//! mark of a held position (the producer's own `mark_price` is not the market's).

use super::common::{fits, refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};

/// The gate (opens only).
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let max = ctx.cfg.price_collar.max_deviation;
    let symbol = &ctx.plan.symbol;
    let mark = ctx
        .snap
        .market
        .get(symbol)
        .map(|m| m.last_close)
        .or_else(|| {
            let x = ctx.snap.exchange.as_ref()?;
            x.positions.get(symbol).map(|p| p.mark_price)
        });
    let line = TraceLine::new("price_collar", Outcome::Pass)
        .opt_num("limit_price", ctx.plan.price)
        .opt_num("mark", mark)
        .num("max_deviation", max);
    let Some(limit) = ctx.plan.price else {
        trace.push(line.note("no limit price: valued at the mark, never refused here"));
        return Ok(());
    };
    let Some(mark) = mark.filter(|m| *m > 0.0) else {
        let why = format!("no mark for {symbol} to check the limit price {limit} against");
        return Err(refuse(
            trace,
            line,
            Refusal::new(BlockReason::MarketDataUnavailable, why),
        ));
    };
    let deviation = (limit / mark - 1.0).abs();
    let line = line.num("deviation", deviation);
    if !fits(deviation, max) {
        let why = format!(
            "limit price {limit} is {:.2}% from the mark {mark} (at most {:.2}%)",
            deviation * 100.0,
            max * 100.0
        );
        return Err(refuse(
            trace,
            line,
            Refusal::new(BlockReason::PriceOutOfBand, why),
        ));
    }
    trace.push(line);
    Ok(())
}

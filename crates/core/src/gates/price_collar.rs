//! Price collar: an open whose limit price (`price`) is more than `max_deviation` from the
//! current mark is refused (`price_out_of_band`). A plan without a limit price is valued at the
//! mark and never refused here. The mark is the market data's last close, else the exchange's
//! mark of a held position (the producer's own `mark_price` is not the market's).

use super::common::{fits, refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

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
    trace
        .line("price_collar", Outcome::Pass)
        .opt_num("limit_price", ctx.plan.price)
        .opt_num("mark", mark)
        .num("max_deviation", max);
    let Some(limit) = ctx.plan.price else {
        trace
            .last()
            .note("no limit price: valued at the mark, never refused here");
        return Ok(());
    };
    let Some(mark) = mark.filter(|m| *m > 0.0) else {
        let why = format!("no mark for {symbol} to check the limit price {limit} against");
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::MarketDataUnavailable, why),
        ));
    };
    let deviation = (limit / mark - 1.0).abs();
    trace.last().num("deviation", deviation);
    if !fits(deviation, max) {
        let why = format!(
            "limit price {limit} is {:.2}% from the mark {mark} (at most {:.2}%)",
            deviation * 100.0,
            max * 100.0
        );
        return Err(refuse(
            trace,
            Refusal::new(BlockReason::PriceOutOfBand, why),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{market, plan, run, sym, NOW};

    #[test]
    fn a_limit_price_may_stray_2_percent_from_the_mark() {
        let mut snap = test_snapshot(Default::default(), None);
        snap.market_mut()
            .insert(sym("BTCUSDT"), market(100.0, vec![]));
        // (limit price, expected) against a mark of 100 and the 2 % default.
        let cases = [
            ("100", Ok(())),
            ("102", Ok(())),
            ("98", Ok(())),
            ("102.01", Err(BlockReason::PriceOutOfBand)),
            ("97.99", Err(BlockReason::PriceOutOfBand)),
            ("150", Err(BlockReason::PriceOutOfBand)),
        ];
        for (price, expected) in cases {
            let open = plan("BTCUSDT", "OPEN_LONG", &[("price", price)]);
            let got = run(&open, &snap, &Config::default(), NOW, check);
            assert_eq!(got, expected, "limit {price}");
        }
    }

    #[test]
    fn no_limit_passes_and_no_mark_refuses() {
        let snap = test_snapshot(Default::default(), None);
        let market_order = plan("BTCUSDT", "OPEN_LONG", &[]);
        assert_eq!(
            run(&market_order, &snap, &Config::default(), NOW, check),
            Ok(())
        );
        let limit = plan("BTCUSDT", "OPEN_LONG", &[("price", "100")]);
        assert_eq!(
            run(&limit, &snap, &Config::default(), NOW, check),
            Err(BlockReason::MarketDataUnavailable)
        );
    }
}

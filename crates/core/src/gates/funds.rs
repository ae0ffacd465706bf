//! Margin and fund caps: the $118k-on-$13k incident, refused before the
//! order instead of discovered after it.

use super::common::{fits, refuse, Candidate, Ctx, Refusal};
use super::portfolio::Portfolio;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// Projected margin usage = (Σ notional_i / leverage_i + candidate's) / equity.
pub fn margin(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    portfolio: &Portfolio,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let max = ctx.cfg.funds.max_margin_usage;
    let used = portfolio.margin_used();
    let added = cand.notional / f64::from(cand.leverage);
    let equity = portfolio.equity;
    let projected = if equity > 0.0 {
        (used + added) / equity
    } else {
        f64::INFINITY
    };
    trace
        .line("margin", Outcome::Pass)
        .num("margin_used_usdt", used)
        .num("candidate_margin_usdt", added)
        .num("equity_usdt", equity)
        .num("projected_usage", projected)
        .num("max_usage", max);
    if !fits(projected, max) {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::MarginCap,
                format!(
                    "projected margin usage {:.2}% > {:.2}% (equity {equity:.2} USDT)",
                    projected * 100.0,
                    max * 100.0
                ),
            ),
        ));
    }
    Ok(())
}

/// Position count, notional per trade and projected total notional.
pub fn caps(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    portfolio: &Portfolio,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.funds;
    let is_new = portfolio.side_of(&cand.symbol).is_none();
    let count_after = portfolio.occupied_slots() + usize::from(is_new);
    let total_after = portfolio.total_notional() + cand.notional;
    trace
        .line("fund_caps", Outcome::Pass)
        .int("positions_after", count_after as i64)
        .int("max_open_positions", i64::from(cfg.max_open_positions))
        .num("notional", cand.notional)
        .num("max_notional_per_trade", cfg.max_notional_per_trade_usdt)
        .num("total_notional_after", total_after)
        .num("max_total_notional", cfg.max_total_notional_usdt);
    if count_after > cfg.max_open_positions as usize {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::MaxPositions,
                format!(
                    "{} positions and reservations held; at most {}",
                    portfolio.occupied_slots(),
                    cfg.max_open_positions
                ),
            ),
        ));
    }
    if !fits(cand.notional, cfg.max_notional_per_trade_usdt) {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::NotionalPerTradeExceeded,
                format!(
                    "{} × {} = {:.2} USDT > {} USDT per trade",
                    cand.qty, cand.price, cand.notional, cfg.max_notional_per_trade_usdt
                ),
            ),
        ));
    }
    if !fits(total_after, cfg.max_total_notional_usdt) {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::TotalNotionalExceeded,
                format!(
                    "projected total notional {total_after:.2} USDT > {} USDT",
                    cfg.max_total_notional_usdt
                ),
            ),
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
    use crate::gates::common::testing::{account, candidate, plan, reserve, run, NOW};
    use crate::types::Side;

    const SYMBOLS: [&str; 10] = [
        "AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT", "FUSDT", "GUSDT", "HUSDT", "IUSDT", "JUSDT",
    ];

    /// `n` reservations of `each` USDT at 5x on the first `n` symbols, on 1,000 USDT equity.
    fn reserved(n: usize, each: f64) -> crate::snapshot::Snapshot {
        let mut book = Book::default();
        for (i, s) in SYMBOLS.iter().take(n).enumerate() {
            reserve(&mut book, &format!("r{i}"), s, Side::Long, each);
        }
        test_snapshot(book, Some(account(1_000.0)))
    }

    fn margin_of(snap: &crate::snapshot::Snapshot, notional: f64) -> Result<(), BlockReason> {
        let open = plan("ZUSDT", "OPEN_LONG", &[]);
        let cand = candidate("ZUSDT", Side::Long, notional, 5);
        run(&open, snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            margin(ctx, &cand, &portfolio, t)
        })
    }

    #[test]
    fn margin_usage_is_capped_at_65_percent_of_equity() {
        // 1,000 USDT equity, 5x: 3,250 USDT of notional is 650 margin = 65 %.
        let empty = reserved(0, 0.0);
        assert_eq!(margin_of(&empty, 3_250.0), Ok(()));
        assert_eq!(margin_of(&empty, 3_255.0), Err(BlockReason::MarginCap));
        // A 500 USDT reservation at 5x holds 100 margin: 2,750 more is 650 again.
        let one = reserved(1, 500.0);
        assert_eq!(margin_of(&one, 2_750.0), Ok(()));
        assert_eq!(margin_of(&one, 2_755.0), Err(BlockReason::MarginCap));
        // No equity: any margin is too much.
        let broke = test_snapshot(Book::default(), Some(account(0.0)));
        assert_eq!(margin_of(&broke, 1.0), Err(BlockReason::MarginCap));
    }

    fn caps_of(
        snap: &crate::snapshot::Snapshot,
        symbol: &str,
        notional: f64,
    ) -> Result<(), BlockReason> {
        let open = plan(symbol, "OPEN_LONG", &[]);
        let cand = candidate(symbol, Side::Long, notional, 5);
        run(&open, snap, &Config::default(), NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            caps(ctx, &cand, &portfolio, t)
        })
    }

    #[test]
    fn count_per_trade_and_total_caps_at_their_defaults() {
        // Defaults: 10 positions, 200 USDT per trade, 2,000 USDT in total.
        let nine = reserved(9, 200.0);
        assert_eq!(caps_of(&nine, "ZUSDT", 200.0), Ok(()));
        assert_eq!(
            caps_of(&nine, "ZUSDT", 200.01),
            Err(BlockReason::NotionalPerTradeExceeded)
        );
        let ten = reserved(10, 190.0);
        assert_eq!(caps_of(&ten, "ZUSDT", 1.0), Err(BlockReason::MaxPositions));
        // Adding to a held symbol takes no new slot; 1,900 + 100 = 2,000 is the total cap.
        assert_eq!(caps_of(&ten, "AUSDT", 100.0), Ok(()));
        assert_eq!(
            caps_of(&ten, "AUSDT", 100.5),
            Err(BlockReason::TotalNotionalExceeded)
        );
    }
}

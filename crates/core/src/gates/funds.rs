//! Margin and fund caps: the $118k-on-$13k incident, refused before the
//! order instead of discovered after it.

use super::common::{fits, refuse, Candidate, Ctx, Refusal};
use super::portfolio::Portfolio;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};

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
    let line = TraceLine::new("margin", Outcome::Pass)
        .num("margin_used_usdt", used)
        .num("candidate_margin_usdt", added)
        .num("equity_usdt", equity)
        .num("projected_usage", projected)
        .num("max_usage", max);
    if !fits(projected, max) {
        return Err(refuse(
            trace,
            line,
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
    trace.push(line);
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
    let line = TraceLine::new("fund_caps", Outcome::Pass)
        .int("positions_after", count_after as i64)
        .int("max_open_positions", i64::from(cfg.max_open_positions))
        .num("notional", cand.notional)
        .num("max_notional_per_trade", cfg.max_notional_per_trade_usdt)
        .num("total_notional_after", total_after)
        .num("max_total_notional", cfg.max_total_notional_usdt);
    if count_after > cfg.max_open_positions as usize {
        return Err(refuse(
            trace,
            line,
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
            line,
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
            line,
            Refusal::new(
                BlockReason::TotalNotionalExceeded,
                format!(
                    "projected total notional {total_after:.2} USDT > {} USDT",
                    cfg.max_total_notional_usdt
                ),
            ),
        ));
    }
    trace.push(line);
    Ok(())
}

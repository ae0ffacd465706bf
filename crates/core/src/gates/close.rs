//! The close path: the position must exist, an optional kill-score block,
//! and one exit lock per symbol so that two producers can never close the same position twice.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};

/// The position a close acts on.
#[derive(Clone, Debug, PartialEq)]
pub struct ClosingPosition {
    /// Its size in base units.
    pub qty: f64,
    /// The price to value the close at.
    pub mark: f64,
}

/// The position must exist in the exchange snapshot or the ledger.
pub fn position_exists(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<ClosingPosition, Refusal> {
    let symbol = &ctx.plan.symbol;
    let ledger = ctx.snap.book.positions.get(symbol);
    let live = ctx.snap.exchange.as_ref().map(|x| x.positions.get(symbol));
    let market_mark = ctx.snap.market.get(symbol).map(|m| m.last_close);
    let line = TraceLine::new("position_exists", Outcome::Pass)
        .text("symbol", symbol.as_str())
        .flag("in_ledger", ledger.is_some())
        .flag("exchange_available", live.is_some());
    let found = match (live.flatten(), ledger) {
        (Some(x), _) => Some(ClosingPosition {
            qty: x.qty,
            mark: x.mark_price,
        }),
        (None, Some(l)) => Some(ClosingPosition {
            qty: l.qty,
            mark: market_mark.unwrap_or(l.entry_price),
        }),
        (None, None) => None,
    };
    match (found, live) {
        (Some(pos), _) => {
            trace.push(line.num("qty", pos.qty).num("mark", pos.mark));
            Ok(pos)
        }
        (None, None) => Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::ExchangeStateUnavailable,
                format!("no ledger entry for {symbol} and no exchange snapshot to check"),
            ),
        )),
        (None, Some(_)) => Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::NoPosition,
                format!("no open position on {symbol}"),
            ),
        )),
    }
}

/// Closes are not blocked by the kill score unless `close_kill_score_block` is configured.
pub fn kill_score(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.kill_score;
    let line = TraceLine::new("close_kill_score", Outcome::Pass)
        .opt_num("kill_score", ctx.plan.kill_score)
        .num("critical", cfg.critical)
        .flag("close_kill_score_block", cfg.close_kill_score_block);
    match ctx.plan.kill_score {
        Some(k) if cfg.close_kill_score_block && k >= cfg.critical => Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::KillScoreCritical,
                format!(
                    "kill score {k} >= {} and close_kill_score_block is on",
                    cfg.critical
                ),
            ),
        )),
        _ => {
            let outcome = if cfg.close_kill_score_block {
                Outcome::Pass
            } else {
                Outcome::NotApplicable
            };
            trace.push(TraceLine { outcome, ..line });
            Ok(())
        }
    }
}

/// One exit lock per symbol: a live lock held by another plan blocks this close.
pub fn exit_lock(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let symbol = &ctx.plan.symbol;
    let lock = ctx.snap.book.live_exit_lock(symbol, ctx.now);
    let line = TraceLine::new("exit_lock", Outcome::Pass)
        .text("symbol", symbol.as_str())
        .int("ttl_secs", ctx.cfg.exit_lock_ttl_secs as i64);
    match lock {
        Some(l) if l.holder != ctx.plan.plan_id => Err(refuse(
            trace,
            line.text("held_by", l.holder.as_str()),
            Refusal::new(
                BlockReason::ExitLockBusyDoubleClosePrevention,
                format!("{symbol} is being closed by {}", l.holder),
            ),
        )),
        Some(_) => {
            trace.push(line.note("already held by this plan (a rotation close)"));
            Ok(())
        }
        None => {
            trace.push(line.note("free: taken by this plan"));
            Ok(())
        }
    }
}

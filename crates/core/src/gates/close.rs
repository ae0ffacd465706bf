//! The close path: the position must exist, an optional kill-score block,
//! and one exit lock per symbol so that two producers can never close the same position twice.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

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
    trace
        .line("position_exists", Outcome::Pass)
        .id("symbol", symbol)
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
            trace.last().num("qty", pos.qty).num("mark", pos.mark);
            Ok(pos)
        }
        (None, None) => Err(refuse(
            trace,
            Refusal::new(
                BlockReason::ExchangeStateUnavailable,
                format!("no ledger entry for {symbol} and no exchange snapshot to check"),
            ),
        )),
        (None, Some(_)) => Err(refuse(
            trace,
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
    trace
        .line("close_kill_score", Outcome::Pass)
        .opt_num("kill_score", ctx.plan.kill_score)
        .num("critical", cfg.critical)
        .flag("close_kill_score_block", cfg.close_kill_score_block);
    match ctx.plan.kill_score {
        Some(k) if cfg.close_kill_score_block && k >= cfg.critical => Err(refuse(
            trace,
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
            trace.last().outcome(outcome);
            Ok(())
        }
    }
}

/// One exit lock per symbol: a live lock held by another plan blocks this close, and so does an
/// open of the symbol still in flight (a close sized from the exchange when sent would take
/// that open's fill, and the open's result booked after it would leave the ledger holding a
/// position the exchange closed): the close waits for the open's result.
pub fn exit_lock(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let symbol = &ctx.plan.symbol;
    let lock = ctx.snap.book.live_exit_lock(symbol, ctx.now);
    trace
        .line("exit_lock", Outcome::Pass)
        .id("symbol", symbol)
        .int("ttl_secs", ctx.cfg.exit_lock_ttl_secs as i64);
    if let Some(open) = ctx.snap.book.open_in_flight(symbol) {
        trace.last().id("open_in_flight", open);
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::ExitLockBusyDoubleClosePrevention,
                format!("{symbol} has an open in flight ({open}): the close waits for its result"),
            ),
        ));
    }
    match lock {
        Some(l) if l.holder != ctx.plan.plan_id => {
            trace.last().id("held_by", &l.holder);
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ExitLockBusyDoubleClosePrevention,
                    format!("{symbol} is being closed by {}", l.holder),
                ),
            ))
        }
        Some(_) => {
            trace
                .last()
                .note("already held by this plan (a rotation close)");
            Ok(())
        }
        None => {
            trace.last().note("free: taken by this plan");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Book, ExitLock, OrderInDoubt};
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, plan, position, reserve, run, sym, traced, NOW};
    use crate::snapshot::{ExchangePosition, ExchangeState};
    use crate::time::Timestamp;
    use crate::types::{PlanId, Side};

    fn exists(book: Book, exchange: Option<ExchangeState>) -> Result<ClosingPosition, BlockReason> {
        let snap = test_snapshot(book, exchange);
        let close = plan("BTCUSDT", "FULL_CLOSE_PROPOSED", &[]);
        run(&close, &snap, &Config::default(), NOW, position_exists)
    }

    #[test]
    fn a_close_needs_a_position_in_the_exchange_or_the_ledger() {
        let mut ledgered = Book::default();
        ledgered
            .positions
            .insert(sym("BTCUSDT"), position(Side::Long, 0.5, 100.0));
        // The ledger alone (no market): valued at its entry.
        assert_eq!(
            exists(ledgered.clone(), None),
            Ok(ClosingPosition {
                qty: 0.5,
                mark: 100.0
            })
        );
        // The exchange's size and mark win over the ledger's.
        let mut live = account(1_000.0);
        live.positions.insert(
            sym("BTCUSDT"),
            ExchangePosition {
                side: Side::Long,
                qty: 0.4,
                entry_price: 100.0,
                mark_price: 105.0,
                leverage: 5,
            },
        );
        assert_eq!(
            exists(ledgered, Some(live)),
            Ok(ClosingPosition {
                qty: 0.4,
                mark: 105.0
            })
        );
        assert_eq!(
            exists(Book::default(), Some(account(1_000.0))),
            Err(BlockReason::NoPosition)
        );
        assert_eq!(
            exists(Book::default(), None),
            Err(BlockReason::ExchangeStateUnavailable)
        );
    }

    #[test]
    fn the_kill_score_blocks_a_close_only_when_configured() {
        let snap = test_snapshot(Book::default(), None);
        let close = |k: &str| plan("BTCUSDT", "FULL_CLOSE_PROPOSED", &[("kill_score", k)]);
        let (got, line) = traced(&close("0.99"), &snap, &Config::default(), NOW, kill_score);
        assert_eq!((got, line.outcome), (Ok(()), Outcome::NotApplicable));
        let mut cfg = Config::default();
        cfg.kill_score.close_kill_score_block = true;
        // Critical is 0.80: at it blocks, just under passes.
        assert_eq!(
            run(&close("0.8"), &snap, &cfg, NOW, kill_score),
            Err(BlockReason::KillScoreCritical)
        );
        assert_eq!(run(&close("0.7999"), &snap, &cfg, NOW, kill_score), Ok(()));
    }

    #[test]
    fn a_live_exit_lock_of_another_plan_blocks_the_close() {
        let lock = |holder: &str, expires_in_ms: i64| {
            let mut book = Book::default();
            book.exit_locks.insert(
                sym("BTCUSDT"),
                ExitLock {
                    holder: PlanId::parse(holder).expect("id"),
                    expires_at: Timestamp(NOW.millis() + expires_in_ms),
                    fence: 7,
                },
            );
            test_snapshot(book, None)
        };
        let close = plan("BTCUSDT", "FULL_CLOSE_PROPOSED", &[]);
        let cfg = Config::default();
        let busy = Err(BlockReason::ExitLockBusyDoubleClosePrevention);
        assert_eq!(run(&close, &lock("other", 1), &cfg, NOW, exit_lock), busy);
        // A lock that expires at this very millisecond is no longer live.
        assert_eq!(run(&close, &lock("other", 0), &cfg, NOW, exit_lock), Ok(()));
        // This plan's own lock (a rotation close) is its to use.
        assert_eq!(run(&close, &lock("p1", 1), &cfg, NOW, exit_lock), Ok(()));
        let free = test_snapshot(Book::default(), None);
        assert_eq!(run(&close, &free, &cfg, NOW, exit_lock), Ok(()));
    }

    #[test]
    fn an_open_of_the_symbol_in_flight_makes_the_close_wait() {
        let close = plan("BTCUSDT", "FULL_CLOSE_PROPOSED", &[]);
        let cfg = Config::default();
        let busy = Err(BlockReason::ExitLockBusyDoubleClosePrevention);
        // A permitted, unsettled open (its reservation) of the same symbol: the close waits,
        // and the trace names the open.
        let mut book = Book::default();
        reserve(&mut book, "expand1", "BTCUSDT", Side::Long, 100.0);
        let snap = test_snapshot(book, None);
        assert_eq!(run(&close, &snap, &cfg, NOW, exit_lock), busy);
        let (_, line) = traced(&close, &snap, &cfg, NOW, exit_lock);
        assert!(format!("{line:?}").contains("expand1"), "{line:?}");
        // One of another symbol does not hold it back.
        let mut book = Book::default();
        reserve(&mut book, "open2", "ETHUSDT", Side::Long, 100.0);
        let snap = test_snapshot(book, None);
        assert_eq!(run(&close, &snap, &cfg, NOW, exit_lock), Ok(()));
        // An open in doubt (its reservation gone) still may fill: the close waits; a close of
        // the symbol in doubt is the exit lock's business, not this rule's.
        let doubt = |action: &str| {
            let mut book = Book::default();
            book.in_doubt.insert(
                PlanId::parse("o3").expect("id"),
                OrderInDoubt {
                    symbol: sym("BTCUSDT"),
                    action: action.to_owned(),
                    since: NOW,
                    send_deadline: NOW,
                    why: "about to send".to_owned(),
                },
            );
            test_snapshot(book, None)
        };
        assert_eq!(run(&close, &doubt("OPEN_LONG"), &cfg, NOW, exit_lock), busy);
        assert_eq!(
            run(&close, &doubt("PARTIAL_50"), &cfg, NOW, exit_lock),
            Ok(())
        );
    }
}

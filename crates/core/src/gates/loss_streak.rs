//! Loss-streak guard: `symbol_losses` losing closes in a row on one symbol, all within
//! `window_secs` of each other, lock opens on that symbol for `lock_secs` after the last one
//! (`symbol_loss_streak`); `global_losses` in a row across the account lock every open
//! (`loss_streak_global`). A winning close ends a streak.

use super::common::{refuse, Ctx, Refusal};
use crate::book::CloseRecord;
use crate::reason::BlockReason;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace, TraceLine};

/// A streak that locks: its length and when its last loss happened.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Streak {
    /// Losing closes in a row (newest first) that fall within the window of the newest.
    pub losses: usize,
    /// The newest loss.
    pub last_at: Timestamp,
}

/// The trailing losing streak of `closes` (oldest first), counting only losses within
/// `window_secs` of the newest one.
pub fn streak<'a>(
    closes: impl DoubleEndedIterator<Item = &'a CloseRecord>,
    window_secs: u64,
) -> Option<Streak> {
    let mut losses = 0;
    let mut last_at = None;
    for c in closes.rev() {
        if !(c.pnl < 0.0) {
            break;
        }
        let newest = *last_at.get_or_insert(c.at);
        if newest.secs_since(c.at) > window_secs as f64 {
            break;
        }
        losses += 1;
    }
    last_at.map(|last_at| Streak { losses, last_at })
}

/// The gate (opens only).
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.loss_streak;
    let closes = &ctx.snap.book.closes;
    let symbol = &ctx.plan.symbol;
    let on_symbol = streak(
        closes.iter().filter(|c| c.symbol == *symbol),
        cfg.window_secs,
    );
    let global = streak(closes.iter(), cfg.window_secs);
    let count = |s: Option<Streak>| s.map_or(0, |s| s.losses as i64);
    let line = TraceLine::new("loss_streak", Outcome::Pass)
        .int("symbol_streak", count(on_symbol))
        .int("symbol_losses", i64::from(cfg.symbol_losses))
        .int("global_streak", count(global))
        .int("global_losses", i64::from(cfg.global_losses))
        .int("window_secs", cfg.window_secs as i64)
        .int("lock_secs", cfg.lock_secs as i64);
    let locked = |s: Option<Streak>, n: u32| {
        s.filter(|s| s.losses >= n as usize && ctx.now.secs_since(s.last_at) < cfg.lock_secs as f64)
    };
    let until = |s: Streak| s.last_at.plus_secs(cfg.lock_secs).millis();
    if let Some(s) = locked(on_symbol, cfg.symbol_losses) {
        let why = format!(
            "{} losing closes in a row on {symbol}: opens on it locked until {} (ms)",
            s.losses,
            until(s)
        );
        return Err(refuse(
            trace,
            line,
            Refusal::new(BlockReason::SymbolLossStreak, why),
        ));
    }
    if let Some(s) = locked(global, cfg.global_losses) {
        let why = format!(
            "{} losing closes in a row across the account: opens locked until {} (ms)",
            s.losses,
            until(s)
        );
        return Err(refuse(
            trace,
            line,
            Refusal::new(BlockReason::LossStreakGlobal, why),
        ));
    }
    trace.push(line);
    Ok(())
}

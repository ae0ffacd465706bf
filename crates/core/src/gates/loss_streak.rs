//! Loss-streak guard: `symbol_losses` losing closes in a row on one symbol, all within
//! `window_secs` of each other, lock opens on that symbol for `lock_secs` after the last one
//! (`symbol_loss_streak`); `global_losses` in a row across the account lock every open
//! (`loss_streak_global`). A winning close ends a streak.

use super::common::{refuse, Ctx, Refusal};
use crate::book::CloseRecord;
use crate::reason::BlockReason;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace};

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
    trace
        .line("loss_streak", Outcome::Pass)
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
            Refusal::new(BlockReason::LossStreakGlobal, why),
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
    use crate::gates::common::testing::{plan, run, sym, NOW};
    use crate::types::PlanId;

    /// Closes (symbol, seconds before NOW, pnl), oldest first.
    fn closes(list: &[(&str, u64, f64)]) -> Book {
        let mut book = Book::default();
        for (i, (s, ago, pnl)) in list.iter().enumerate() {
            book.closes.push(CloseRecord {
                plan_id: PlanId::parse(&format!("c{i}")).expect("id"),
                symbol: sym(s),
                at: NOW.minus_secs(*ago),
                pnl: *pnl,
            });
        }
        book
    }

    fn open_on(symbol: &str, book: Book) -> Result<(), BlockReason> {
        let snap = test_snapshot(book, None);
        let open = plan(symbol, "OPEN_LONG", &[]);
        run(&open, &snap, &Config::default(), NOW, check)
    }

    const H: u64 = 3_600;

    #[test]
    fn three_losses_on_a_symbol_lock_it_for_six_hours_from_the_last() {
        let three = [
            ("BTCUSDT", 3 * H, -1.0),
            ("BTCUSDT", 2 * H, -1.0),
            ("BTCUSDT", 60, -1.0),
        ];
        assert_eq!(
            open_on("BTCUSDT", closes(&three)),
            Err(BlockReason::SymbolLossStreak)
        );
        // Other symbols are free; two losses do not lock.
        assert_eq!(open_on("ETHUSDT", closes(&three)), Ok(()));
        assert_eq!(open_on("BTCUSDT", closes(&three[1..])), Ok(()));
        // A win in between ends the streak.
        let broken = [three[0], ("BTCUSDT", 150 * 60, 5.0), three[1], three[2]];
        assert_eq!(open_on("BTCUSDT", closes(&broken)), Ok(()));
        // The lock lasts 6 h after the last loss: 6 h − 1 s locks, 6 h is free.
        let at = |last: u64| {
            [
                ("BTCUSDT", last + 2, -1.0),
                ("BTCUSDT", last + 1, -1.0),
                ("BTCUSDT", last, -1.0),
            ]
        };
        assert_eq!(
            open_on("BTCUSDT", closes(&at(6 * H - 1))),
            Err(BlockReason::SymbolLossStreak)
        );
        assert_eq!(open_on("BTCUSDT", closes(&at(6 * H))), Ok(()));
    }

    #[test]
    fn losses_further_apart_than_the_window_are_no_streak() {
        // The first loss is 6 h + 1 s before the newest: outside the window.
        let spread = [
            ("BTCUSDT", 6 * H + 61, -1.0),
            ("BTCUSDT", 120, -1.0),
            ("BTCUSDT", 60, -1.0),
        ];
        assert_eq!(open_on("BTCUSDT", closes(&spread)), Ok(()));
        let within = [
            ("BTCUSDT", 6 * H + 60, -1.0),
            ("BTCUSDT", 120, -1.0),
            ("BTCUSDT", 60, -1.0),
        ];
        assert_eq!(
            open_on("BTCUSDT", closes(&within)),
            Err(BlockReason::SymbolLossStreak)
        );
    }

    #[test]
    fn five_losses_across_the_account_lock_every_symbol() {
        let syms = ["AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"];
        let five: Vec<_> = syms
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, 600 - i as u64 * 60, -1.0))
            .collect();
        assert_eq!(
            open_on("ZUSDT", closes(&five)),
            Err(BlockReason::LossStreakGlobal)
        );
        assert_eq!(open_on("ZUSDT", closes(&five[1..])), Ok(()));
    }
}

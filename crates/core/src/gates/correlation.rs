//! The correlation cap: no new position that moves with one already held.

use super::common::{refuse, Candidate, Ctx, Refusal};
use super::portfolio::Portfolio;
use crate::market::correlation::aligned_correlation;
use crate::market::SymbolMarket;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};
use crate::types::{Side, Symbol};
use smallvec::SmallVec;

/// `symbol`'s market summary if its klines are no older than the regime's limit.
fn fresh<'a>(
    ctx: &Ctx<'_>,
    symbol: &Symbol,
    market: Option<&'a SymbolMarket>,
) -> Result<&'a SymbolMarket, String> {
    let max_age = ctx.cfg.regime.max_kline_age_secs as f64;
    match market {
        None => Err(format!("no klines for {symbol}")),
        Some(m) => {
            let age = m.age_secs(ctx.now);
            if (0.0..=max_age).contains(&age) {
                Ok(m)
            } else {
                Err(format!(
                    "{symbol} klines are {age:.0} s old (max {max_age:.0} s)"
                ))
            }
        }
    }
}

/// A symbol held besides the candidate: its side and its market summary.
type Other<'a> = (&'a Symbol, Side, Option<&'a SymbolMarket>);

/// The largest (direction-aware) correlation between the candidate and each other symbol
/// held; above the cap blocks. Too little aligned data blocks too (fail-closed).
pub fn check(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    portfolio: &Portfolio,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let cfg = &ctx.cfg.correlation;
    let window = cfg.window as usize;
    trace
        .line("correlation", Outcome::Pass)
        .num("threshold", cfg.max)
        .int("window", i64::from(cfg.window))
        .flag("direction_aware", cfg.direction_aware);
    // Distinct (symbol, side) pairs, in symbol order: positions already are, so the sort
    // only moves reservations, and the correlation row is then walked once.
    let mut others: SmallVec<[Other<'_>; 16]> = portfolio
        .holdings
        .iter()
        .filter(|h| *h.symbol != cand.symbol)
        .map(|h| (h.symbol, h.side, h.market))
        .collect();
    fn key<'o>(o: &Other<'o>) -> (&'o Symbol, Side) {
        (o.0, o.1)
    }
    if !others.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        others.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        others.dedup_by(|a, b| key(a) == key(b));
    }
    if others.is_empty() {
        trace.last().int("pairs", 0);
        return Ok(());
    }
    let unavailable = |detail: String| Refusal::new(BlockReason::MarketDataUnavailable, detail);
    let mine = match fresh(
        ctx,
        &cand.symbol,
        ctx.snap.market.get(&cand.symbol).map(|m| &**m),
    ) {
        Ok(m) => m,
        Err(why) => return Err(refuse(trace, unavailable(why))),
    };
    let mut row = ctx
        .snap
        .correlations
        .as_ref()
        .filter(|c| c.window == window)
        .and_then(|c| c.row(&cand.symbol))
        .map(|r| r.walk());
    let mut worst: Option<(f64, f64, &Symbol)> = None;
    for (symbol, side, market) in &others {
        let theirs = match fresh(ctx, symbol, *market) {
            Ok(m) => m,
            Err(why) => return Err(refuse(trace, unavailable(why))),
        };
        let cached = row.as_mut().and_then(|r| r.find(symbol));
        let aligned =
            cached.unwrap_or_else(|| aligned_correlation(&mine.returns, &theirs.returns, window));
        let Some(rho) = aligned.rho else {
            let why = if aligned.common < window {
                format!(
                    "{} and {symbol} share {} aligned returns; {window} needed",
                    cand.symbol, aligned.common
                )
            } else {
                format!(
                    "{} or {symbol} did not move: correlation undefined",
                    cand.symbol
                )
            };
            trace.last().id("with", *symbol);
            return Err(refuse(trace, unavailable(why)));
        };
        let effective = if cfg.direction_aware {
            rho * cand.side.sign() * side.sign()
        } else {
            rho
        };
        if worst.is_none_or(|(w, _, _)| effective > w) {
            worst = Some((effective, rho, symbol));
        }
    }
    let (effective, rho, with) = worst.expect("others is not empty");
    trace
        .last()
        .int("pairs", others.len() as i64)
        .num("max_corr", effective)
        .num("raw_corr", rho)
        .id("with", with);
    if effective > cfg.max {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::CorrelationCap,
                format!(
                    "{} correlates {effective:.3} with {with} (threshold {})",
                    cand.symbol, cfg.max
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
    use crate::gates::common::testing::{
        account, candidate, market, plan, position, run, sym, NOW,
    };
    use crate::snapshot::Snapshot;
    use crate::time::Timestamp;
    use crate::types::Side;

    /// `n` hourly returns ending at NOW: `x` repeats 1, 1, −1, −1; `z` repeats 1, −1, −1, 1.
    /// Both have mean 0 and the same variance and are orthogonal, so `c·x + d·z` correlates
    /// with `x` at exactly c / √(c² + d²): 0.8 for (4, 3).
    fn series(n: usize, c: f64, d: f64) -> Vec<(Timestamp, f64)> {
        const X: [f64; 4] = [1.0, 1.0, -1.0, -1.0];
        const Z: [f64; 4] = [1.0, -1.0, -1.0, 1.0];
        (0..n)
            .map(|i| {
                let at = Timestamp(NOW.millis() - (n - 1 - i) as i64 * 3_600_000);
                (at, 0.01 * (c * X[i % 4] + d * Z[i % 4]))
            })
            .collect()
    }

    /// AUSDT held long with returns `x`; the candidate BUSDT's returns are `4x + 3z`.
    fn held_a(n_b: usize) -> Snapshot {
        let mut book = Book::default();
        book.positions
            .insert(sym("AUSDT"), position(Side::Long, 1.0, 100.0));
        let mut snap = test_snapshot(book, Some(account(1_000.0)));
        snap.market_mut()
            .insert(sym("AUSDT"), market(100.0, series(100, 1.0, 0.0)));
        snap.market_mut()
            .insert(sym("BUSDT"), market(100.0, series(n_b, 4.0, 3.0)));
        snap
    }

    fn corr_of(snap: &Snapshot, side: Side, max: f64) -> Result<(), BlockReason> {
        let mut cfg = Config::default();
        cfg.correlation.max = max;
        let open = plan("BUSDT", "OPEN_LONG", &[]);
        let cand = candidate("BUSDT", side, 10.0, 5);
        run(&open, snap, &cfg, NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            check(ctx, &cand, &portfolio, t)
        })
    }

    #[test]
    fn a_correlation_of_0_8_passes_a_cap_above_it_and_not_one_below() {
        let snap = held_a(100);
        assert_eq!(corr_of(&snap, Side::Long, 0.81), Ok(()));
        assert_eq!(
            corr_of(&snap, Side::Long, 0.79),
            Err(BlockReason::CorrelationCap)
        );
        // Short against a long holding: −0.8, a hedge, whatever the cap.
        assert_eq!(corr_of(&snap, Side::Short, 0.0), Ok(()));
    }

    /// The cache's row is walked in symbol order: a reservation listed after the positions
    /// but sorting before them must still be found in it (and the cached value used).
    #[test]
    fn a_reservation_sorting_before_the_positions_is_correlated_from_the_cache() {
        use crate::book::Reservation;
        use crate::market::correlation::CorrelationCache;
        use crate::types::PlanId;
        // CUSDT is held (returns z: orthogonal to BUSDT's 4x + 3z at 0.6); AUSDT is reserved
        // (returns x: 0.8 with BUSDT). Holdings list CUSDT first, AUSDT after it.
        let mut snap = held_a(100);
        let a = snap
            .book_mut()
            .positions
            .remove(&sym("AUSDT"))
            .expect("held");
        snap.book_mut().positions.insert(sym("CUSDT"), a);
        snap.market_mut()
            .insert(sym("CUSDT"), market(100.0, series(100, 0.0, 1.0)));
        snap.book_mut().reservations.insert(
            PlanId::parse("p-a").unwrap(),
            Reservation {
                symbol: sym("AUSDT"),
                side: Side::Long,
                qty: 0.1,
                notional: 10.0,
                leverage: 5,
                score: None,
                granted_at: NOW,
                expires_at: Timestamp(NOW.millis() + 60_000),
                fence: 1,
            },
        );
        snap.correlations = Some(std::sync::Arc::new(CorrelationCache::build(
            &snap.market,
            100,
        )));
        // AUSDT's returns are gone after the cache was built: computed directly, the pair
        // would fail closed (no aligned returns), so a pass at 0.81 and a cap at 0.79 show
        // that the gate found the cached 0.8.
        snap.market_mut()
            .insert(sym("AUSDT"), market(100.0, vec![]));
        assert_eq!(corr_of(&snap, Side::Long, 0.81), Ok(()));
        assert_eq!(
            corr_of(&snap, Side::Long, 0.79),
            Err(BlockReason::CorrelationCap)
        );
    }

    /// A symbol held and also reserved on the same side is one pair, wherever the reservation
    /// falls in the holdings; a second side is a pair of its own.
    #[test]
    fn a_symbol_held_twice_on_one_side_is_one_pair() {
        use crate::gates::common::testing::reserve;
        let pairs = |snap: &Snapshot| {
            let mut cfg = Config::default();
            cfg.correlation.max = 0.81;
            let open = plan("BUSDT", "OPEN_LONG", &[]);
            let cand = candidate("BUSDT", Side::Long, 10.0, 5);
            let mut trace = Trace::default();
            let ctx = Ctx {
                plan: &open,
                snap,
                cfg: &cfg,
                now: NOW,
            };
            let portfolio = Portfolio::build(snap).expect("an account");
            check(&ctx, &cand, &portfolio, &mut trace).expect("0.8 is under 0.81");
            trace.fact("correlation", "pairs").cloned()
        };
        let mut snap = held_a(100);
        reserve(snap.book_mut(), "p-a", "AUSDT", Side::Long, 10.0);
        assert_eq!(pairs(&snap), Some(crate::trace::Fact::Int(1)));
        reserve(snap.book_mut(), "p-s", "AUSDT", Side::Short, 10.0);
        assert_eq!(pairs(&snap), Some(crate::trace::Fact::Int(2)));
    }

    #[test]
    fn too_few_aligned_returns_or_no_klines_fail_closed() {
        let short = held_a(99);
        assert_eq!(
            corr_of(&short, Side::Long, 0.81),
            Err(BlockReason::MarketDataUnavailable)
        );
        let mut missing = held_a(100);
        missing.market_mut().remove(&sym("AUSDT"));
        assert_eq!(
            corr_of(&missing, Side::Long, 0.81),
            Err(BlockReason::MarketDataUnavailable)
        );
        // Nothing else held: nothing to correlate with.
        let mut alone = held_a(0);
        alone.book_mut().positions.clear();
        assert_eq!(corr_of(&alone, Side::Long, 0.0), Ok(()));
    }
}

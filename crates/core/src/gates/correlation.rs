//! The correlation cap: no new position that moves with one already held.

use super::common::{refuse, Candidate, Ctx, Refusal};
use super::portfolio::Portfolio;
use crate::market::correlation::aligned_correlation;
use crate::market::SymbolMarket;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};
use crate::types::Symbol;
use std::collections::BTreeSet;

fn fresh<'a>(ctx: &'a Ctx<'_>, symbol: &Symbol) -> Result<&'a SymbolMarket, String> {
    let max_age = ctx.cfg.regime.max_kline_age_secs as f64;
    match ctx.snap.market.get(symbol) {
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
    let line = TraceLine::new("correlation", Outcome::Pass)
        .num("threshold", cfg.max)
        .int("window", i64::from(cfg.window))
        .flag("direction_aware", cfg.direction_aware);
    let others: BTreeSet<(&Symbol, crate::types::Side)> = portfolio
        .holdings
        .iter()
        .filter(|h| *h.symbol != cand.symbol)
        .map(|h| (h.symbol, h.side))
        .collect();
    if others.is_empty() {
        trace.push(line.int("pairs", 0));
        return Ok(());
    }
    let unavailable = |detail: String| Refusal::new(BlockReason::MarketDataUnavailable, detail);
    let mine = match fresh(ctx, &cand.symbol) {
        Ok(m) => m,
        Err(why) => return Err(refuse(trace, line, unavailable(why))),
    };
    let mut worst: Option<(f64, f64, &Symbol)> = None;
    for (symbol, side) in &others {
        let theirs = match fresh(ctx, symbol) {
            Ok(m) => m,
            Err(why) => return Err(refuse(trace, line, unavailable(why))),
        };
        let cached = ctx
            .snap
            .correlations
            .as_ref()
            .filter(|c| c.window == window)
            .and_then(|c| c.get(&cand.symbol, symbol));
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
            return Err(refuse(
                trace,
                line.text("with", symbol.as_str()),
                unavailable(why),
            ));
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
    let line = line
        .int("pairs", others.len() as i64)
        .num("max_corr", effective)
        .num("raw_corr", rho)
        .text("with", with.as_str());
    if effective > cfg.max {
        return Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::CorrelationCap,
                format!(
                    "{} correlates {effective:.3} with {with} (threshold {})",
                    cand.symbol, cfg.max
                ),
            ),
        ));
    }
    trace.push(line);
    Ok(())
}

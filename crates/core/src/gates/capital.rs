//! Capital allocation: the symbol's share of portfolio capital bounds what
//! is reserved on it plus the new open. Mandatory in production, optional in testnet.

use super::common::{fits, refuse, Candidate, Ctx, Refusal};
use super::portfolio::{HoldingKind, Portfolio};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace, TraceLine};

/// Blocks when reserved + new notional exceeds allocation × capital (or, where allocation is
/// mandatory, when either input is missing).
pub fn check(
    ctx: &Ctx<'_>,
    cand: &Candidate,
    portfolio: &Portfolio,
    trace: &mut Trace,
) -> Result<(), Refusal> {
    let required = ctx.cfg.capital_allocation_required();
    let capital = &ctx.snap.capital;
    let pct = capital.allocation_pct.get(&cand.symbol).copied();
    let line = TraceLine::new("capital_allocation", Outcome::Pass)
        .flag("required", required)
        .opt_num("allocation_pct", pct)
        .opt_num("portfolio_capital_usdt", capital.portfolio_usdt);
    let (pct, total) = match (pct, capital.portfolio_usdt) {
        (Some(p), Some(c)) => (p, c),
        _ if !required => {
            trace.push(TraceLine {
                outcome: Outcome::NotApplicable,
                ..line.note("no allocation for this symbol; optional outside production")
            });
            return Ok(());
        }
        _ => {
            return Err(refuse(
                trace,
                line,
                Refusal::new(
                    BlockReason::CapitalAllocationExceeded,
                    format!(
                        "allocation or portfolio capital missing for {}: required in this mode",
                        cand.symbol
                    ),
                ),
            ))
        }
    };
    let reserved: f64 = portfolio
        .holdings
        .iter()
        .filter(|h| *h.symbol == cand.symbol && matches!(h.kind, HoldingKind::Reserved(_)))
        .map(|h| h.notional)
        .sum();
    let limit = pct * total;
    let line = line
        .num("reserved_usdt", reserved)
        .num("new_usdt", cand.notional)
        .num("limit_usdt", limit);
    if !fits(reserved + cand.notional, limit) {
        return Err(refuse(
            trace,
            line,
            Refusal::new(
                BlockReason::CapitalAllocationExceeded,
                format!(
                    "{:.2} reserved + {:.2} new > {limit:.2} USDT allocated to {}",
                    reserved, cand.notional, cand.symbol
                ),
            ),
        ));
    }
    trace.push(line);
    Ok(())
}

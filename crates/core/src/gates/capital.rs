//! Capital allocation: the symbol's share of portfolio capital bounds what
//! is reserved on it plus the new open. Mandatory in production, optional in testnet.

use super::common::{fits, refuse, Candidate, Ctx, Refusal};
use super::portfolio::{HoldingKind, Portfolio};
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

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
    trace
        .line("capital_allocation", Outcome::Pass)
        .flag("required", required)
        .opt_num("allocation_pct", pct)
        .opt_num("portfolio_capital_usdt", capital.portfolio_usdt);
    let (pct, total) = match (pct, capital.portfolio_usdt) {
        (Some(p), Some(c)) => (p, c),
        _ if !required => {
            trace
                .last()
                .outcome(Outcome::NotApplicable)
                .note("no allocation for this symbol; optional outside production");
            return Ok(());
        }
        _ => {
            return Err(refuse(
                trace,
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
    trace
        .last()
        .num("reserved_usdt", reserved)
        .num("new_usdt", cand.notional)
        .num("limit_usdt", limit);
    if !fits(reserved + cand.notional, limit) {
        return Err(refuse(
            trace,
            Refusal::new(
                BlockReason::CapitalAllocationExceeded,
                format!(
                    "{:.2} reserved + {:.2} new > {limit:.2} USDT allocated to {}",
                    reserved, cand.notional, cand.symbol
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
    use crate::config::{Config, Mode};
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{account, candidate, plan, reserve, run, sym, NOW};
    use crate::snapshot::Snapshot;
    use crate::types::Side;

    fn allocation_of(snap: &Snapshot, cfg: &Config, notional: f64) -> Result<(), BlockReason> {
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        let cand = candidate("BTCUSDT", Side::Long, notional, 5);
        run(&open, snap, cfg, NOW, |ctx, t| {
            let portfolio = Portfolio::build(ctx.snap).expect("an account");
            check(ctx, &cand, &portfolio, t)
        })
    }

    #[test]
    fn reserved_plus_new_may_reach_the_allocation_and_no_further() {
        let mut book = Book::default();
        reserve(&mut book, "r1", "BTCUSDT", Side::Long, 100.0);
        reserve(&mut book, "r2", "ETHUSDT", Side::Long, 900.0);
        let mut snap = test_snapshot(book, Some(account(1_000.0)));
        // 20 % of 1,000 = 200 USDT for BTCUSDT; 100 already reserved on it (ETH's is not).
        snap.capital.portfolio_usdt = Some(1_000.0);
        snap.capital.allocation_pct.insert(sym("BTCUSDT"), 0.20);
        let cfg = Config::default();
        assert_eq!(allocation_of(&snap, &cfg, 100.0), Ok(()));
        assert_eq!(
            allocation_of(&snap, &cfg, 100.01),
            Err(BlockReason::CapitalAllocationExceeded)
        );
    }

    #[test]
    fn a_missing_allocation_blocks_only_where_it_is_required() {
        let snap = test_snapshot(Book::default(), Some(account(1_000.0)));
        let testnet = Config::default();
        assert_eq!(allocation_of(&snap, &testnet, 10.0), Ok(()));
        let production = Config {
            mode: Mode::Production,
            ..Config::default()
        };
        assert_eq!(
            allocation_of(&snap, &production, 10.0),
            Err(BlockReason::CapitalAllocationExceeded)
        );
    }
}

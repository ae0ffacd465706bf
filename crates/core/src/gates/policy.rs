//! The policy universe: one source of truth, read every decision,
//! fail-closed when missing.

use super::common::{refuse, Ctx, Refusal};
use crate::reason::BlockReason;
use crate::snapshot::Policy;
use crate::trace::{Outcome, Trace};

/// Blocks opens when the universe is missing, unreadable or does not hold the symbol.
pub fn check(ctx: &Ctx<'_>, trace: &mut Trace) -> Result<(), Refusal> {
    let symbol = &ctx.plan.symbol;
    trace
        .line("policy_universe", Outcome::Pass)
        .id("symbol", symbol);
    match &ctx.snap.policy {
        Policy::Missing => {
            trace.last().name("policy", "missing");
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ActiveSlotsNoPolicy,
                    "quantum:policy:current has no universe_symbols",
                ),
            ))
        }
        Policy::Invalid(why) => {
            trace.last().name("policy", "invalid");
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ActiveSlotsNoPolicy,
                    format!("universe_symbols unusable: {why}"),
                ),
            ))
        }
        Policy::Universe(symbols) if !symbols.contains(symbol) => {
            trace.last().int("universe_size", symbols.len() as i64);
            Err(refuse(
                trace,
                Refusal::new(
                    BlockReason::ActiveSlotsNotInUniverse,
                    format!(
                        "{symbol} is not in the policy universe ({} symbols)",
                        symbols.len()
                    ),
                ),
            ))
        }
        Policy::Universe(symbols) => {
            trace.last().int("universe_size", symbols.len() as i64);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gates::common::test_snapshot;
    use crate::gates::common::testing::{plan, run, NOW};

    #[test]
    fn only_a_universe_that_holds_the_symbol_passes() {
        let open = plan("BTCUSDT", "OPEN_LONG", &[]);
        let cases = [
            (None, Err(BlockReason::ActiveSlotsNoPolicy)),
            (Some("[\"BTC\""), Err(BlockReason::ActiveSlotsNoPolicy)),
            (
                Some("[\"ETHUSDT\"]"),
                Err(BlockReason::ActiveSlotsNotInUniverse),
            ),
            (Some("[\"ETHUSDT\",\"BTCUSDT\"]"), Ok(())),
        ];
        for (field, expected) in cases {
            let mut snap = test_snapshot(Default::default(), None);
            snap.policy = Policy::from_field(field);
            let got = run(&open, &snap, &Config::default(), NOW, check);
            assert_eq!(got, expected, "universe_symbols {field:?}");
        }
    }
}

//! Per-gate mode (`[gates]`): `enforce` blocks, `shadow` records what the gate would have
//! blocked (its trace line says `shadow` with the reason, the decision record lists it) and
//! lets the plan on, `off` skips the gate with a trace line that says so.

use super::common::Refusal;
use crate::config::GateMode;
use crate::reason::BlockReason;
use crate::trace::{Outcome, Trace};

/// Runs gates under their modes and remembers the shadow refusals of one decision.
#[derive(Debug, Default)]
pub struct Gatekeeper {
    /// What shadow-mode gates would have blocked, in gate order.
    pub shadow: Vec<BlockReason>,
}

impl Gatekeeper {
    /// Runs `check` (the gate named `gate`) under `mode`; when it does not count (shadow, off),
    /// the plan goes on with `pass()`.
    #[inline]
    pub fn run<T>(
        &mut self,
        mode: GateMode,
        gate: &'static str,
        trace: &mut Trace,
        check: impl FnOnce(&mut Trace) -> Result<T, Refusal>,
        pass: impl FnOnce() -> T,
    ) -> Result<T, Refusal> {
        match mode {
            GateMode::Off => {
                trace
                    .line(gate, Outcome::NotApplicable)
                    .name("mode", "off")
                    .note("gate off by configuration");
                Ok(pass())
            }
            GateMode::Enforce => check(trace),
            GateMode::Shadow => match check(trace) {
                Ok(v) => Ok(v),
                Err(refusal) => {
                    self.record(trace, &refusal);
                    Ok(pass())
                }
            },
        }
    }

    /// Turns the gate's block line into a shadow line and remembers the reason.
    pub fn record(&mut self, trace: &mut Trace, refusal: &Refusal) {
        let blocked_here = trace
            .lines()
            .last()
            .is_some_and(|line| line.outcome == Outcome::Block(refusal.reason));
        if blocked_here {
            trace
                .last()
                .outcome(Outcome::Shadow(refusal.reason))
                .name("mode", "shadow");
        }
        self.shadow.push(refusal.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusing(trace: &mut Trace) -> Result<u32, Refusal> {
        let refusal = Refusal::new(BlockReason::CorrelationCap, "0.91 > 0.80");
        trace.line("correlation", Outcome::Pass);
        Err(super::super::common::refuse(trace, refusal))
    }

    #[test]
    fn shadow_records_and_passes_enforce_blocks_off_skips() {
        let mut g = Gatekeeper::default();
        let mut trace = Trace::default();
        assert_eq!(
            g.run(GateMode::Shadow, "correlation", &mut trace, refusing, || 7),
            Ok(7)
        );
        assert_eq!(
            trace.lines()[0].outcome,
            Outcome::Shadow(BlockReason::CorrelationCap)
        );
        assert_eq!(g.shadow, [BlockReason::CorrelationCap]);

        let mut trace = Trace::default();
        let enforced = g.run(GateMode::Enforce, "correlation", &mut trace, refusing, || 7);
        assert_eq!(enforced.unwrap_err().reason, BlockReason::CorrelationCap);
        assert_eq!(
            trace.lines()[0].outcome,
            Outcome::Block(BlockReason::CorrelationCap)
        );

        let mut trace = Trace::default();
        let off = g.run(
            GateMode::Off,
            "correlation",
            &mut trace,
            |_| -> Result<u32, Refusal> { panic!("an off gate is not evaluated") },
            || 9,
        );
        assert_eq!(off, Ok(9));
        assert_eq!(trace.lines()[0].outcome, Outcome::NotApplicable);
        assert_eq!(g.shadow.len(), 1, "only shadow refusals are remembered");
    }
}

//! What every gate shares: the context it reads, the candidate open, its refusal, and the
//! helpers that write a refusal's trace line. It sits below every gate file and below the
//! stage table in `gates/mod.rs`, so the arrows between them point one way.

use crate::config::Config;
use crate::plan::Plan;
use crate::reason::BlockReason;
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace, TraceLine};
use crate::types::{Side, Symbol};

/// A gate's "no", with a sentence that says why in numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The stable reason code.
    pub reason: BlockReason,
    /// The numbers behind it, for the block record and the logs.
    pub detail: String,
}

impl Refusal {
    /// A refusal with its detail.
    pub fn new(reason: BlockReason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

/// What every gate may read.
pub struct Ctx<'a> {
    /// The plan being decided.
    pub plan: &'a Plan,
    /// Everything known at decision time.
    pub snap: &'a Snapshot,
    /// The effective configuration.
    pub cfg: &'a Config,
    /// Decision time.
    pub now: Timestamp,
}

/// The open being considered, once its size and price are known.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The instrument.
    pub symbol: Symbol,
    /// Direction.
    pub side: Side,
    /// Quantity after kill-score scaling.
    pub qty: f64,
    /// The price it is valued at.
    pub price: f64,
    /// qty × price.
    pub notional: f64,
    /// Leverage.
    pub leverage: u32,
}

/// `value <= cap`, forgiving the last bits of floating-point rounding: `qty × price` computed
/// from a quantity sized to exactly the cap must not come out a hair above it. NaN never fits.
pub fn fits(value: f64, cap: f64) -> bool {
    value <= cap + cap.abs() * 1e-9
}

/// Writes a block line for `refusal` at `gate` and returns the refusal (for `?` chains).
pub(crate) fn refuse(trace: &mut Trace, line: TraceLine, refusal: Refusal) -> Refusal {
    let mut line = line;
    line.outcome = Outcome::Block(refusal.reason);
    if line.note.is_none() {
        line.note = Some(refusal.detail.clone().into());
    }
    trace.push(line);
    refusal
}

/// A snapshot for a gate's own tests: nothing but `book` and `exchange`.
#[cfg(test)]
pub(crate) fn test_snapshot(
    book: crate::book::Book,
    exchange: Option<crate::snapshot::ExchangeState>,
) -> Snapshot {
    Snapshot {
        trading_state: crate::types::TradingState::Active,
        policy: crate::snapshot::Policy::from_field(None),
        prior: None,
        book,
        exchange,
        market: Default::default(),
        correlations: None,
        capital: Default::default(),
    }
}

/// Runs a gate's check on an open of 0.001 `symbol` against `snap` with the default config:
/// the reason code it refuses with, if any (a gate's own tests).
#[cfg(test)]
pub(crate) fn check_open(
    symbol: &str,
    snap: &Snapshot,
    check: fn(&Ctx<'_>, &mut Trace) -> Result<(), Refusal>,
) -> Result<(), BlockReason> {
    let plan = Plan::parse(&[
        ("plan_id", "p1"),
        ("symbol", symbol),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", "0.001"),
    ])
    .expect("a valid open");
    let cfg = Config::default();
    let ctx = Ctx {
        plan: &plan,
        snap,
        cfg: &cfg,
        now: Timestamp(0),
    };
    check(&ctx, &mut Trace::default()).map_err(|r| r.reason)
}

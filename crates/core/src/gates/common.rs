//! What every gate shares: the context it reads, the candidate open, its refusal, and the
//! helpers that write a refusal's trace line. It sits below every gate file and below the
//! stage table in `gates/mod.rs`, so the arrows between them point one way.

use crate::config::Config;
use crate::market::brackets::LeverageBrackets;
use crate::plan::Plan;
use crate::reason::BlockReason;
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::trace::{Outcome, Trace};
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
    /// The symbol's leverage brackets.
    pub brackets: LeverageBrackets,
}

/// `value <= cap`, forgiving the last bits of floating-point rounding: `qty × price` computed
/// from a quantity sized to exactly the cap must not come out a hair above it. NaN never fits.
pub fn fits(value: f64, cap: f64) -> bool {
    value <= cap + cap.abs() * 1e-9
}

/// Marks the gate's line — the trace's last, which the gate has just written — as blocked by
/// `refusal` (its detail as the note, unless the gate wrote one) and returns the refusal (for
/// `?` chains).
pub(crate) fn refuse(trace: &mut Trace, refusal: Refusal) -> Refusal {
    let has_note = trace.lines().last().is_some_and(|l| l.note.is_some());
    let line = trace.last().outcome(Outcome::Block(refusal.reason));
    if !has_note {
        line.note(refusal.detail.clone());
    }
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
        book: book.into(),
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
    let plan = testing::plan(symbol, "OPEN_LONG", &[]);
    testing::run(&plan, snap, &Config::default(), Timestamp(0), check)
}

/// What a gate's own tests build their cases from: plans, accounts and market summaries with
/// only the fields a case names, and a runner that checks the gate wrote its trace line.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Candidate, Ctx, Refusal};
    use crate::book::{Book, LedgerPosition, Reservation};
    use crate::config::Config;
    use crate::market::SymbolMarket;
    use crate::plan::Plan;
    use crate::reason::BlockReason;
    use crate::snapshot::{ExchangeClock, ExchangeState, Snapshot};
    use crate::time::Timestamp;
    use crate::trace::{Outcome, Trace, TraceLine};
    use crate::types::{PlanId, Side, Symbol};

    /// Decision time of every case: 2026-01-01T00:00:00Z.
    pub const NOW: Timestamp = Timestamp(1_767_225_600_000);

    /// A plan `plan_id=p1 symbol=… action=… decision=EXECUTE qty=0.001`, with `extra` fields
    /// added (a field named twice is refused by the parser, so `extra` must not repeat these).
    pub fn plan(symbol: &str, action: &str, extra: &[(&str, &str)]) -> Plan {
        let mut fields = vec![
            ("plan_id", "p1"),
            ("symbol", symbol),
            ("action", action),
            ("decision", "EXECUTE"),
        ];
        if !extra.iter().any(|(k, _)| *k == "qty") {
            fields.push(("qty", "0.001"));
        }
        fields.extend_from_slice(extra);
        Plan::parse(&fields).unwrap_or_else(|e| panic!("test plan {fields:?}: {e:?}"))
    }

    /// A symbol from a literal.
    pub fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("a valid symbol")
    }

    /// An account with `equity_usdt`, no positions, on this machine's clock.
    pub fn account(equity_usdt: f64) -> ExchangeState {
        ExchangeState {
            equity_usdt,
            positions: Default::default(),
            clock: ExchangeClock::Local,
        }
    }

    /// A market summary whose newest bar closed at `NOW` at `last_close`, with BTCUSDT's first
    /// three leverage brackets.
    pub fn market(last_close: f64, returns: Vec<(Timestamp, f64)>) -> std::sync::Arc<SymbolMarket> {
        std::sync::Arc::new(SymbolMarket {
            last_bar_close: NOW,
            last_close,
            bars: returns.len() + 1,
            features: None,
            returns,
            brackets: Some(crate::market::brackets::testing::btc()),
        })
    }

    /// A ledger position of `qty` at `entry_price`, 5x, opened an hour before `NOW`.
    pub fn position(side: Side, qty: f64, entry_price: f64) -> LedgerPosition {
        LedgerPosition {
            side,
            qty,
            entry_price,
            leverage: 5,
            opened_at: NOW.minus_secs(3600),
            entry_score: None,
            entry_fees: 0.0,
        }
    }

    /// Reserves `notional` USDT (5x) on `symbol` for plan `plan_id`, alive for a minute.
    pub fn reserve(book: &mut Book, plan_id: &str, symbol: &str, side: Side, notional: f64) {
        book.reservations.insert(
            PlanId::parse(plan_id).expect("a valid plan id"),
            Reservation {
                symbol: sym(symbol),
                side,
                qty: notional / 100.0,
                notional,
                leverage: 5,
                score: None,
                granted_at: NOW,
                expires_at: NOW.plus_secs(60),
                fence: 1,
            },
        );
    }

    /// An open of `notional` USDT at price 100.
    pub fn candidate(symbol: &str, side: Side, notional: f64, leverage: u32) -> Candidate {
        Candidate {
            symbol: sym(symbol),
            side,
            qty: notional / 100.0,
            price: 100.0,
            notional,
            leverage,
            brackets: crate::market::brackets::testing::btc(),
        }
    }

    /// Runs `gate` on `plan` against `snap` and `cfg` at `now`: the value it passes with or
    /// the reason it refuses with.
    pub fn run<T>(
        plan: &Plan,
        snap: &Snapshot,
        cfg: &Config,
        now: Timestamp,
        gate: impl FnOnce(&Ctx<'_>, &mut Trace) -> Result<T, Refusal>,
    ) -> Result<T, BlockReason> {
        traced(plan, snap, cfg, now, gate).0
    }

    /// [`run`], with the trace line the gate wrote. Every gate writes exactly one line, pass
    /// or block, and a refusal's line carries its reason: both are checked here.
    pub fn traced<T>(
        plan: &Plan,
        snap: &Snapshot,
        cfg: &Config,
        now: Timestamp,
        gate: impl FnOnce(&Ctx<'_>, &mut Trace) -> Result<T, Refusal>,
    ) -> (Result<T, BlockReason>, TraceLine) {
        let ctx = Ctx {
            plan,
            snap,
            cfg,
            now,
        };
        let mut trace = Trace::default();
        let out = gate(&ctx, &mut trace);
        assert_eq!(trace.lines().len(), 1, "one trace line: {trace:?}");
        let line = trace.lines()[0].clone();
        if let Err(r) = &out {
            assert_eq!(
                line.outcome,
                Outcome::Block(r.reason),
                "the line says the refusal"
            );
        }
        (out.map_err(|r| r.reason), line)
    }
}

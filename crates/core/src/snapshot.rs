//! Everything one decision reads, gathered before it is made. `decide` sees nothing else.

use crate::book::Book;
use crate::market::correlation::CorrelationCache;
use crate::market::SymbolMarket;
use crate::reason::BlockReason;
use crate::time::Timestamp;
use crate::trace::RecordTrace;
use crate::types::{PlanId, Side, Symbol, TradingState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The policy universe as read from `quantum:policy:current` / `universe_symbols`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The hash or the field does not exist (so nothing may be opened).
    #[default]
    Missing,
    /// The field exists but is not a non-empty JSON array of symbols (the error says why).
    Invalid(String),
    /// The symbols that may be opened.
    Universe(BTreeSet<Symbol>),
}

impl Policy {
    /// Reads the raw `universe_symbols` value; never guesses: anything but a non-empty JSON
    /// array of valid symbols is `Invalid` with the reason.
    pub fn from_field(raw: Option<&str>) -> Policy {
        let Some(raw) = raw else {
            return Policy::Missing;
        };
        let list: Vec<String> = match serde_json::from_str(raw) {
            Ok(list) => list,
            Err(e) => return Policy::Invalid(format!("not a JSON array of strings: {e}")),
        };
        if list.is_empty() {
            return Policy::Invalid("the universe is empty".to_owned());
        }
        let mut symbols = BTreeSet::new();
        for s in list {
            match Symbol::parse(&s) {
                Ok(sym) => {
                    symbols.insert(sym);
                }
                Err(e) => return Policy::Invalid(format!("{s:?}: {e}")),
            }
        }
        Policy::Universe(symbols)
    }
}

/// A position as the exchange reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangePosition {
    /// Direction.
    pub side: Side,
    /// Size in base units (> 0).
    pub qty: f64,
    /// Average entry price.
    pub entry_price: f64,
    /// Current mark price.
    pub mark_price: f64,
    /// Leverage.
    pub leverage: u32,
}

/// How far the exchange's clock is from this machine's, as last measured. A signed request
/// carries a timestamp the exchange checks against its own clock, and a stale view of the
/// account is only as fresh as the clocks agree: opens are refused when they drift apart.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeClock {
    /// The exchange runs on this machine's clock (the paper exchanges).
    #[default]
    Local,
    /// Exchange time − local time, in ms, as last measured.
    OffsetMs(i64),
    /// Not measured recently enough (never, or the re-measurements failed): unknown.
    Unmeasured,
}

/// The account as the exchange reports it. Its absence is never read as "no positions".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeState {
    /// Account equity (wallet balance + unrealized PnL) in USDT.
    pub equity_usdt: f64,
    /// Open positions by symbol.
    #[serde(default)]
    pub positions: BTreeMap<Symbol, ExchangePosition>,
    /// The exchange's clock against ours.
    #[serde(default)]
    pub clock: ExchangeClock,
}

/// Capital allocation inputs (`quantum:portfolio:capital`, `quantum:capital:allocation:*`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapitalState {
    /// Portfolio capital in USDT, if the account sync has written it.
    pub portfolio_usdt: Option<f64>,
    /// Allocation fraction per symbol.
    pub allocation_pct: BTreeMap<Symbol, f64>,
}

/// What is known about a plan id that was decided before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The plan.
    pub plan_id: PlanId,
    /// Its symbol.
    pub symbol: Symbol,
    /// Its action's wire name.
    pub action: String,
    /// ALLOW, BLOCK, PENDING or SKIP.
    pub verdict: VerdictKind,
    /// The block or pending reason.
    pub reason: Option<BlockReason>,
    /// A sentence on the reason.
    pub detail: String,
    /// Permitted quantity (ALLOW).
    pub qty: Option<f64>,
    /// Permitted notional (ALLOW).
    pub notional: Option<f64>,
    /// The regime at decision time.
    pub regime: Option<String>,
    /// Desired slots at decision time.
    pub desired_slots: Option<u32>,
    /// Occupied slots at decision time.
    pub occupied_slots: Option<u32>,
    /// When it was decided.
    pub decided_at: Timestamp,
    /// The decision trace (one object per gate when written as JSON).
    pub trace: RecordTrace,
    /// What gates in shadow mode would have blocked (they blocked nothing), in gate order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<BlockReason>,
}

/// The kind of a verdict, as the decisions stream spells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerdictKind {
    /// A permit was written.
    Allow,
    /// A block record was written.
    Block,
    /// Waiting for a rotation close.
    Pending,
    /// Not evaluated (decision ≠ EXECUTE, or a non-executing action).
    Skip,
    /// Failed the schema.
    Reject,
}

impl VerdictKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Allow => "ALLOW",
            VerdictKind::Block => "BLOCK",
            VerdictKind::Pending => "PENDING",
            VerdictKind::Skip => "SKIP",
            VerdictKind::Reject => "REJECT",
        }
    }

    /// Whether the plan's story is over (PENDING is the only non-terminal verdict).
    pub fn is_terminal(self) -> bool {
        self != VerdictKind::Pending
    }
}

/// What a state store holds and hands back to be decided on: the store reads it, and the
/// snapshot adds to it what the world outside says ([`Snapshot::assemble`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredState {
    /// The kill switch.
    pub trading_state: TradingState,
    /// The policy universe.
    pub policy: Policy,
    /// Ledger, reservations, locks, recent opens: shared with the store that read it until
    /// one of them changes it ([`Arc::make_mut`]), so a read copies nothing.
    pub book: Arc<Book>,
    /// Capital allocation inputs.
    pub capital: CapitalState,
}

/// Everything `decide` reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The kill switch.
    pub trading_state: TradingState,
    /// The policy universe.
    pub policy: Policy,
    /// The earlier decision for this plan id, if there is one.
    pub prior: Option<DecisionRecord>,
    /// Ledger, reservations, locks, recent opens (shared: see [`StoredState::book`]).
    pub book: Arc<Book>,
    /// The exchange's view, `None` when it could not be read.
    pub exchange: Option<ExchangeState>,
    /// Per-symbol market summaries computed once per bar, shared by every snapshot of the bar.
    pub market: Arc<BTreeMap<Symbol, Arc<SymbolMarket>>>,
    /// Pairwise correlations computed once per bar (`None`: computed when needed).
    pub correlations: Option<Arc<CorrelationCache>>,
    /// Capital allocation inputs.
    pub capital: CapitalState,
}

impl Snapshot {
    /// The one place a snapshot is built: the store's state, the plan's earlier decision, and
    /// the exchange's view and market summaries at decision time.
    pub fn assemble(
        state: StoredState,
        prior: Option<DecisionRecord>,
        exchange: Option<ExchangeState>,
        market: Arc<BTreeMap<Symbol, Arc<SymbolMarket>>>,
        correlations: Option<Arc<CorrelationCache>>,
    ) -> Snapshot {
        Snapshot {
            trading_state: state.trading_state,
            policy: state.policy,
            prior,
            book: state.book,
            exchange,
            market,
            correlations,
            capital: state.capital,
        }
    }

    /// The book to change (a batch applies each decision's effects to it; tests set it up):
    /// copied first if a store or another snapshot still shares it.
    pub fn book_mut(&mut self) -> &mut Book {
        Arc::make_mut(&mut self.book)
    }

    /// The market summaries to change (tests set them up): copied first if shared.
    pub fn market_mut(&mut self) -> &mut BTreeMap<Symbol, Arc<SymbolMarket>> {
        Arc::make_mut(&mut self.market)
    }
}

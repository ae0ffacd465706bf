//! The ungoverned twin: the same plans sent straight to a second paper account, with only the
//! exchange's margin limit between them and the orders — what the report sets the governed
//! account against.
//!
//! No governor setting reaches it, so runs that differ only in governor settings (the report's
//! comparison runs, a candidate config, a sweep's grid) share one twin: it runs once per
//! [`TwinKey`] — the signals, the reference symbol their kill score reads, the leverage a plan
//! without one trades, the margin mode, the costs, the capital and the recorded plans — and
//! also hands each bar's sample open plans to the governed runs, so those are drawn once too.

use super::accounts::{
    account_stat, extremes_at, prices_at, AccountStat, LiquidationRow, UngovernedCounts,
};
use super::recorded::{Cursor, RecordedPlans};
use super::signals::{kill_score, open_plans, ExitPlanner, PlanFields, SignalConfig};
use super::tape::Tape;
use crate::exchange::paper::{PaperCosts, PaperExchange};
use crate::exchange::{Exchange, OrderError, OrderRequest};
use crate::market_data::closed_by;
use governor_core::config::MarginMode;
use governor_core::plan::Action;
use governor_core::time::Timestamp;
use governor_core::types::Symbol;
use governor_core::Plan;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Everything the twin's run depends on.
#[derive(Clone, Debug)]
pub struct TwinKey {
    /// The sample signals' knobs.
    pub signals: SignalConfig,
    /// The symbol whose ATR and 24 h return make the signals' kill score (none: 0).
    pub reference: Option<Symbol>,
    /// The leverage of a plan that states none.
    pub default_leverage: u32,
    /// How the paper exchange liquidates.
    pub margin_mode: MarginMode,
    /// Fill assumptions.
    pub costs: PaperCosts,
    /// Starting capital.
    pub initial_equity: f64,
    /// The recorded plans it trades instead of the sample signals.
    pub plans: Option<Arc<RecordedPlans>>,
}

impl PartialEq for TwinKey {
    fn eq(&self, o: &Self) -> bool {
        let same_plans = match (&self.plans, &o.plans) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        };
        self.signals == o.signals
            && self.reference == o.reference
            && self.default_leverage == o.default_leverage
            && self.margin_mode == o.margin_mode
            && self.costs == o.costs
            && self.initial_equity.to_bits() == o.initial_equity.to_bits()
            && same_plans
    }
}

/// What the twin did.
#[derive(Debug)]
pub struct Twin {
    /// Its account after each bar of the timeline.
    pub bars: Vec<AccountStat>,
    /// Its order counts.
    pub counts: UngovernedCounts,
    /// What the paper exchange liquidated.
    pub liquidations: Vec<LiquidationRow>,
    /// The sample open plans of each bar (empty with recorded plans), for the governed runs.
    pub opens: Vec<Vec<PlanFields>>,
}

/// The sample signals' kill score at `t`: the reference's ATR and its 24 h return.
fn kill_at(tape: &Tape, reference: Option<&Symbol>, t: Timestamp) -> f64 {
    let Some(r) = reference else { return 0.0 };
    let Some(klines) = tape.klines.get(r) else {
        return 0.0;
    };
    let closed = closed_by(klines, t);
    if closed.is_empty() {
        return 0.0;
    }
    let ret = (closed.len() > 24)
        .then(|| closed[closed.len() - 1].close / closed[closed.len() - 25].close - 1.0);
    let atr = tape.features(r, t).map_or(0.0, |f| f.atr_pct);
    kill_score(atr, ret.unwrap_or(0.0))
}

/// The account and its counts while the twin runs.
struct Account {
    exchange: PaperExchange,
    counts: UngovernedCounts,
    default_leverage: u32,
}

impl Account {
    /// A plan straight to the exchange: an open as stated, a close of its share of what is
    /// held; anything that does not parse, or closes nothing, places no order.
    fn order(&mut self, fields: &[(String, String)]) {
        let Ok(plan) = Plan::parse(fields) else {
            return;
        };
        let order = match plan.action {
            Action::Open(side) => OrderRequest {
                client_id: plan.plan_id.clone(),
                symbol: plan.symbol.clone(),
                side,
                qty: plan.qty.unwrap_or(0.0),
                reduce_only: false,
                leverage: plan.leverage.unwrap_or(self.default_leverage),
            },
            Action::Close(kind) => {
                let Some(p) = self.exchange.positions().get(&plan.symbol) else {
                    return;
                };
                OrderRequest {
                    client_id: plan.plan_id.clone(),
                    symbol: plan.symbol.clone(),
                    side: p.side,
                    qty: p.qty * kind.fraction(),
                    reduce_only: true,
                    leverage: 1,
                }
            }
            Action::UpdateSl | Action::Hold => return,
        };
        match self.exchange.place_order(&order) {
            Ok(_) => self.counts.filled += 1,
            Err(OrderError::MarginInsufficient { .. }) => self.counts.margin_rejected += 1,
            Err(_) => {}
        }
    }
}

impl Twin {
    /// Runs the twin over the tape's timeline.
    pub fn run(tape: &Tape, key: &TwinKey) -> Twin {
        let mut account = Account {
            exchange: PaperExchange::new(key.initial_equity, key.costs),
            counts: UngovernedCounts::default(),
            default_leverage: key.default_leverage,
        };
        let universe: BTreeSet<Symbol> = tape.klines.keys().cloned().collect();
        let mut exits = ExitPlanner::default();
        let mut peak = key.initial_equity;
        let mut twin = Twin {
            bars: Vec::with_capacity(tape.timeline.len()),
            counts: UngovernedCounts::default(),
            liquidations: Vec::new(),
            opens: Vec::with_capacity(tape.timeline.len()),
        };
        let mut recorded_cursor = Cursor::default();
        for (i, &t) in tape.timeline.iter().enumerate() {
            let (marks, fills) = prices_at(&tape.klines, t);
            account.exchange.set_prices(marks, fills);
            let (done, _) = account.exchange.liquidate(
                &extremes_at(&tape.klines, t),
                &tape.brackets,
                key.margin_mode,
            );
            twin.liquidations
                .extend(done.iter().map(|l| LiquidationRow::of(t, l)));
            match &key.plans {
                None => {
                    let snapshot = account.exchange.snapshot();
                    for plan in exits.proposals(&key.signals, &snapshot, t) {
                        account.order(&plan);
                    }
                    let kill = kill_at(tape, key.reference.as_ref(), t);
                    let opens = open_plans(&key.signals, &tape.klines, &universe, kill, t);
                    for plan in &opens {
                        account.order(plan);
                    }
                    twin.opens.push(opens);
                }
                Some(recorded) => {
                    for r in recorded_cursor.bar(recorded, &tape.timeline, i) {
                        if let Ok(fields) = r.entry.checked() {
                            account.order(fields);
                        }
                    }
                    twin.opens.push(Vec::new());
                }
            }
            twin.bars.push(account_stat(
                &account.exchange,
                &mut peak,
                &tape.brackets,
                key.margin_mode,
            ));
        }
        twin.counts = account.counts;
        twin
    }
}

/// The twins run so far on one tape, by key.
#[derive(Default)]
pub struct Twins(Mutex<Vec<(TwinKey, Arc<Twin>)>>);

impl Twins {
    /// The twin for `key`, run the first time it is asked for (other threads asking for the
    /// same one wait for it rather than running it again).
    pub fn get(&self, tape: &Tape, key: &TwinKey) -> Arc<Twin> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, twin)) = all.iter().find(|(k, _)| k == key) {
            return twin.clone();
        }
        let twin = Arc::new(Twin::run(tape, key));
        all.push((key.clone(), twin.clone()));
        twin
    }
}

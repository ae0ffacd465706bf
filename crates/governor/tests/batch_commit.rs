//! A batch decided against one snapshot and committed in one call: a race lost in the middle of
//! it re-decides that plan and the ones after it only, and two governors' batches interleaving
//! on the same symbols never hold more slots than desired. On both stores.

#[macro_use]
mod support;

use governor_core::config::Config;
use governor_core::decide::Decision;
use governor_core::effects::{Effect, Guard, GuardFailed, Permit};
use governor_core::results::{ExecutionResult, SettlePolicy, Settlement};
use governor_core::snapshot::{DecisionRecord, StoredState};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, Side};
use governor_core::Plan;
use quantum_governor::store::{StateStore, StoreError};
use quantum_governor::{Governor, Submission};
use std::sync::{Arc, Mutex};
use support::*;

on_both_stores!(
    a_race_lost_inside_a_batch_redecides_that_plan_and_the_ones_after_it,
    two_governors_batches_on_the_same_symbols_never_overfill_the_slots,
    a_close_decided_before_an_open_of_its_symbol_committed_is_decided_again_and_waits,
);

/// Runs `before_commit` once, just before the first batch commit: another governor's commit
/// landing between this governor's read and its commit. Records the size of every batch.
struct Interleaved {
    inner: Arc<dyn StateStore>,
    before_commit: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    batches: Mutex<Vec<usize>>,
}

impl StateStore for Interleaved {
    fn state(
        &self,
        plans: &[&Plan],
        now: Timestamp,
    ) -> Result<(StoredState, Vec<Option<DecisionRecord>>), StoreError> {
        self.inner.state(plans, now)
    }
    fn commit_many(
        &self,
        decisions: &[&Decision],
        now: Timestamp,
    ) -> Result<Vec<Result<u64, GuardFailed>>, StoreError> {
        if let Some(interloper) = self.before_commit.lock().unwrap().take() {
            interloper();
        }
        self.batches.lock().unwrap().push(decisions.len());
        self.inner.commit_many(decisions, now)
    }
    fn commit(
        &self,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<Result<u64, GuardFailed>, StoreError> {
        self.inner.commit(decision, now)
    }
    fn settle(
        &self,
        result: &ExecutionResult,
        policy: &SettlePolicy,
        now: Timestamp,
    ) -> Result<Settlement, StoreError> {
        self.inner.settle(result, policy, now)
    }
    fn apply(
        &self,
        guards: &[Guard],
        effects: &[Effect],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.apply(guards, effects, now)
    }
    fn expire(&self, now: Timestamp) -> Result<(), StoreError> {
        self.inner.expire(now)
    }
    fn dead_letter(
        &self,
        fields: &[(String, String)],
        error: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.dead_letter(fields, error, now)
    }
    fn is_decided(&self, plan_id: &PlanId) -> Result<bool, StoreError> {
        self.inner.is_decided(plan_id)
    }
    fn take_permit(&self, plan_id: &PlanId, now: Timestamp) -> Result<Option<Permit>, StoreError> {
        self.inner.take_permit(plan_id, now)
    }
    fn rotation_plan(&self, pending: &PlanId) -> Result<Option<Plan>, StoreError> {
        self.inner.rotation_plan(pending)
    }
    fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        self.inner.recent_decisions(limit)
    }
    fn decision(&self, plan_id: &PlanId) -> Result<Option<DecisionRecord>, StoreError> {
        self.inner.decision(plan_id)
    }
    fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping()
    }
    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.inner.dead_letter_count()
    }
}

/// An open of 100 USDT (no score: a full book refuses it, it never rotates).
fn open(w: &World, id: &str, symbol: &str, side: Side) -> Plan {
    let mark = w
        .klines
        .get(&sym(symbol))
        .map_or(1.0, |k| k.last().unwrap().close);
    let qty = (100.0 / mark).to_string();
    let action = match side {
        Side::Long => "OPEN_LONG",
        Side::Short => "OPEN_SHORT",
    };
    Plan::parse(&[
        ("plan_id", id),
        ("symbol", symbol),
        ("action", action),
        ("decision", "EXECUTE"),
        ("qty", qty.as_str()),
    ])
    .unwrap()
}

/// The verdict another governor gave its plan, once it decided it.
type Seen = Arc<Mutex<Option<(&'static str, bool)>>>;

/// A governor on `w`'s store whose first batch commit lets another governor decide
/// `interloper` just before it (on the same inputs and moment), and what that one decided.
fn interloped(w: &World, cfg: Config, interloper: Plan) -> (Governor, Arc<Interleaved>, Seen) {
    let other = Governor::new(Arc::new(cfg.clone()), w.gov.store().clone());
    let (inputs, now) = (w.inputs(), w.now);
    let result: Seen = Arc::new(Mutex::new(None));
    let seen = result.clone();
    let store = Arc::new(Interleaved {
        inner: w.gov.store().clone(),
        before_commit: Mutex::new(Some(Box::new(move || {
            let s = other.decide_plan(&interloper, &inputs, now);
            *seen.lock().unwrap() = Some(verdict(&s));
        }))),
        batches: Mutex::new(Vec::new()),
    });
    (Governor::new(Arc::new(cfg), store.clone()), store, result)
}

fn verdict(s: &Submission) -> (&'static str, bool) {
    match s {
        Submission::Decided { decision, fence } => (reason(decision), fence.is_some()),
        other => panic!("{other:?}"),
    }
}

fn loose_cadence() -> Config {
    let mut cfg = Config::default();
    cfg.cadence.max_exec_per_hour = 1_000;
    cfg.cadence.max_exec_per_5min = 1_000;
    cfg.throttle.max_permits_per_sec = 1_000;
    cfg
}

fn a_race_lost_inside_a_batch_redecides_that_plan_and_the_ones_after_it(on: &Stores) {
    let cfg = loose_cadence();
    let w = on.world(cfg.clone());
    // ETH held: 3 of the 4 desired slots are free.
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    let interloper_plan = open(&w, "x1", "SOLUSDT", Side::Long);
    let (inputs, now) = (w.inputs(), w.now);
    let (gov, store, interloper_result) = interloped(&w, cfg, interloper_plan);
    let plans = [
        open(&w, "c1", "NOTLISTEDUSDT", Side::Long),
        open(&w, "a1", "BNBUSDT", Side::Long),
        open(&w, "a2", "XRPUSDT", Side::Short),
        open(&w, "a3", "ADAUSDT", Side::Long),
    ];
    let got: Vec<_> = gov
        .decide_batch(&plans, &inputs, now)
        .iter()
        .map(verdict)
        .collect();
    // The interloper took SOL's slot between the batch's read and its commit.
    assert_eq!(*interloper_result.lock().unwrap(), Some(("allow", true)));
    // Read alone, the batch would have allowed a1, a2 and a3 (3 free slots). After the
    // interloper, c1 stands, a1 lost the race, and a1..a3 were decided again: two slots left.
    assert_eq!(
        got,
        [
            ("active_slots_not_in_universe", true),
            ("allow", true),
            ("allow", true),
            ("slots_full", true),
        ]
    );
    // The first call tried c1 and a1 (committed c1, failed at a1); the second the three left.
    assert_eq!(*store.batches.lock().unwrap(), [4, 3]);
    let state = w.state();
    assert_eq!(state.book.slots().len(), 4, "ETH, SOL, BNB, XRP");
    assert_eq!(state.decisions.len(), 5, "each plan decided once");
}

/// The close read a book with nothing in flight on ETH; an expand of ETH was permitted before
/// the close's commit. The commit's guard catches it: the close is decided again and waits for
/// the open's result (a close sized from the exchange would take the open's fill too).
fn a_close_decided_before_an_open_of_its_symbol_committed_is_decided_again_and_waits(on: &Stores) {
    let cfg = loose_cadence();
    let w = on.world(cfg.clone());
    w.hold("ETHUSDT", Side::Long, 100.0, Some(70.0));
    let expand = open(&w, "expand-1", "ETHUSDT", Side::Long);
    let (inputs, now) = (w.inputs(), w.now);
    let (gov, store, interloper_result) = interloped(&w, cfg, expand);
    let close = Plan::parse(&[
        ("plan_id", "close-1"),
        ("symbol", "ETHUSDT"),
        ("action", "FULL_CLOSE_PROPOSED"),
        ("decision", "EXECUTE"),
    ])
    .unwrap();
    let got: Vec<_> = gov
        .decide_batch(&[close], &inputs, now)
        .iter()
        .map(verdict)
        .collect();
    assert_eq!(*interloper_result.lock().unwrap(), Some(("allow", true)));
    assert_eq!(got, [("exit_lock_busy_double_close_prevention", true)]);
    assert_eq!(*store.batches.lock().unwrap(), [1, 1], "decided twice");
    let state = w.state();
    assert!(state.book.exit_locks.is_empty(), "the close took no lock");
    assert!(!state.permits.contains_key(&pid("close-1")));
}

fn two_governors_batches_on_the_same_symbols_never_overfill_the_slots(on: &Stores) {
    let cfg = loose_cadence();
    let w = on.world(cfg.clone());
    let (inputs, now) = (w.inputs(), w.now);
    let desired = 4;
    let symbols = [
        "BTCUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
    ];
    let batches: Vec<Vec<Plan>> = (0..2)
        .map(|g| {
            (0..24)
                .map(|i| {
                    let s = symbols[(i + g * 3) % symbols.len()];
                    open(&w, &format!("g{g}-{i}"), s, Side::Long)
                })
                .collect()
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let max_seen = std::thread::scope(|scope| {
        let sampler = {
            let done = done.clone();
            let inspect = w.inspect.clone();
            scope.spawn(move || {
                let mut max_seen = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    max_seen = max_seen.max(inspect.state_at(now).book.slots().len());
                }
                max_seen
            })
        };
        let workers: Vec<_> = batches
            .iter()
            .map(|plans| {
                let gov = Governor::new(Arc::new(cfg.clone()), w.gov.store().clone());
                let inputs = &inputs;
                scope.spawn(move || {
                    // Batches of 8, as the stream hands them out.
                    plans
                        .chunks(8)
                        .flat_map(|chunk| gov.decide_batch(chunk, inputs, now))
                        .map(|s| verdict(&s).0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let answers: Vec<Vec<&str>> = workers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for a in &answers {
            assert_eq!(a.len(), 24, "every plan answered");
        }
        sampler.join().unwrap().max(w.state().book.slots().len())
    });
    assert!(
        max_seen <= desired,
        "{max_seen} slots held, {desired} desired"
    );
    let state = w.state();
    assert_eq!(state.book.slots().len(), desired, "the slots did fill");
    assert_eq!(state.decisions.len(), 48, "each plan decided once");
}

//! The store briefly unavailable: the embedded store (and the simulated streams, which live in
//! the same Redis in production) behind a switch that makes every call fail for a while, in one
//! of the two ways a network store fails. Either the call never reaches it
//! (connection refused: nothing happens), or it reaches it and its answer is lost (a timeout
//! after the script ran: everything happened, and the caller does not know). Callers must treat
//! both as "unknown": the governor leaves its entries pending, the executor sends nothing, and
//! whatever did happen is found again (a replayed decision, an order in doubt settled by the
//! reconciler).

use crate::store::memory::MemoryStore;
use crate::store::{StateStore, StoreError};
use governor_core::decide::Decision;
use governor_core::effects::{Effect, Guard, GuardFailed, Permit};
use governor_core::results::{ExecutionResult, SettlePolicy, Settlement};
use governor_core::snapshot::{DecisionRecord, StoredState};
use governor_core::time::Timestamp;
use governor_core::types::PlanId;
use governor_core::Plan;
use std::sync::{Arc, Mutex};

/// How the store fails while it is out.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outage {
    /// Calls never reach it: nothing they asked for happens.
    Refuses,
    /// Calls take effect and their answers are lost.
    LosesAnswers,
}

impl Outage {
    /// Its name in the simulator's log and fault counts.
    pub fn name(self) -> &'static str {
        match self {
            Outage::Refuses => "store_refuses",
            Outage::LosesAnswers => "store_loses_answers",
        }
    }
}

/// Whether the store is out, and how: shared by the store and the streams.
#[derive(Debug, Default)]
pub struct OutageSwitch(Mutex<Switched>);

/// An outage, and how many calls still pass before it begins.
#[derive(Debug, Default)]
struct Switched {
    outage: Option<Outage>,
    calls_before: u32,
}

impl OutageSwitch {
    /// Takes the store out (`Some`) or brings it back (`None`), at once.
    pub fn set(&self, outage: Option<Outage>) {
        self.set_after(outage, 0);
    }

    /// Takes the store out after `calls` more calls have passed (an outage that begins in the
    /// middle of a worker's step: after its read, before its commit).
    pub fn set_after(&self, outage: Option<Outage>, calls: u32) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Switched {
            outage,
            calls_before: calls,
        };
    }

    /// Whether this call finds the store out, and how (counting it against the calls that
    /// still pass).
    fn outage(&self) -> Option<Outage> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.calls_before > 0 {
            s.calls_before -= 1;
            return None;
        }
        s.outage
    }

    /// One call through the switch: `f` runs unless the store refuses it; while it is out its
    /// answer is an error either way.
    pub fn call<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self.outage() {
            None => f(),
            Some(Outage::Refuses) => Err(StoreError::Unavailable(format!("{OUTAGE}: refused"))),
            Some(Outage::LosesAnswers) => {
                // Whatever it did, done; its answer (or error) lost.
                let _ = f();
                Err(StoreError::Unavailable(format!("{OUTAGE}: answer lost")))
            }
        }
    }

    /// Whether `e` is what an outage answers (not a failure of the store's own).
    pub fn is_outage(e: &StoreError) -> bool {
        matches!(e, StoreError::Unavailable(why) if why.starts_with(OUTAGE))
    }
}

/// The embedded store behind the switch.
#[derive(Debug)]
pub struct FlakyStore {
    inner: Arc<MemoryStore>,
    switch: Arc<OutageSwitch>,
}

impl FlakyStore {
    /// `inner`, out whenever `switch` says.
    pub fn new(inner: Arc<MemoryStore>, switch: Arc<OutageSwitch>) -> Self {
        FlakyStore { inner, switch }
    }

    /// One call through the switch.
    fn call<T>(
        &self,
        f: impl FnOnce(&MemoryStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.switch.call(|| f(&self.inner))
    }
}

/// How an outage's errors begin.
const OUTAGE: &str = "simulated outage";

impl StateStore for FlakyStore {
    fn state(
        &self,
        plans: &[&Plan],
        now: Timestamp,
    ) -> Result<(StoredState, Vec<Option<DecisionRecord>>), StoreError> {
        self.call(|s| StateStore::state(s, plans, now))
    }

    fn commit_many(
        &self,
        decisions: &[&Decision],
        now: Timestamp,
    ) -> Result<Vec<Result<u64, GuardFailed>>, StoreError> {
        self.call(|s| StateStore::commit_many(s, decisions, now))
    }

    fn commit(
        &self,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<Result<u64, GuardFailed>, StoreError> {
        self.call(|s| StateStore::commit(s, decision, now))
    }

    fn settle(
        &self,
        result: &ExecutionResult,
        policy: &SettlePolicy,
        now: Timestamp,
    ) -> Result<Settlement, StoreError> {
        self.call(|s| StateStore::settle(s, result, policy, now))
    }

    fn apply(
        &self,
        guards: &[Guard],
        effects: &[Effect],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.call(|s| StateStore::apply(s, guards, effects, now))
    }

    fn expire(&self, now: Timestamp) -> Result<(), StoreError> {
        self.call(|s| StateStore::expire(s, now))
    }

    fn dead_letter(
        &self,
        fields: &[(String, String)],
        error: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.call(|s| StateStore::dead_letter(s, fields, error, now))
    }

    fn is_decided(&self, plan_id: &PlanId) -> Result<bool, StoreError> {
        self.call(|s| StateStore::is_decided(s, plan_id))
    }

    fn take_permit(&self, plan_id: &PlanId, now: Timestamp) -> Result<Option<Permit>, StoreError> {
        self.call(|s| StateStore::take_permit(s, plan_id, now))
    }

    fn rotation_plan(&self, pending: &PlanId) -> Result<Option<Plan>, StoreError> {
        self.call(|s| StateStore::rotation_plan(s, pending))
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        self.call(|s| StateStore::recent_decisions(s, limit))
    }

    fn decision(&self, plan_id: &PlanId) -> Result<Option<DecisionRecord>, StoreError> {
        self.call(|s| StateStore::decision(s, plan_id))
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.call(StateStore::ping)
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.call(StateStore::dead_letter_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused: nothing happens. Answer lost: it happens, and the caller is told it failed.
    #[test]
    fn an_outage_fails_every_call_before_or_after_its_effect() {
        let inner = Arc::new(MemoryStore::new(3600));
        let switch = Arc::new(OutageSwitch::default());
        let store = FlakyStore::new(inner.clone(), switch.clone());
        let fields = vec![("plan_id".to_owned(), "x".to_owned())];
        let now = Timestamp(1_000);
        switch.set(Some(Outage::Refuses));
        let e = store.dead_letter(&fields, "bad".into(), now).unwrap_err();
        assert!(OutageSwitch::is_outage(&e), "{e}");
        assert_eq!(inner.dead_letter_count().unwrap(), 0);
        switch.set(Some(Outage::LosesAnswers));
        let e = store.dead_letter(&fields, "bad".into(), now).unwrap_err();
        assert!(OutageSwitch::is_outage(&e), "{e}");
        assert_eq!(inner.dead_letter_count().unwrap(), 1, "the effect happened");
        switch.set(None);
        assert_eq!(store.dead_letter_count().unwrap(), 1);
        assert!(!OutageSwitch::is_outage(&StoreError::Unavailable(
            "connection refused".into()
        )));
    }
}

//! The embedded state store: all state behind one mutex, so a commit's guards and effects are
//! one critical section. TTLs are driven by the `now` each call is given, never by a clock, so
//! the replay and the tests control time exactly.

use governor_core::book::{Book, RotationPhase};
use governor_core::decide::Decision;
use governor_core::effects::{Effect, Event, Guard, GuardFailed, Permit};
use governor_core::expiry::expire;
use governor_core::reason::BlockReason;
use governor_core::results::{settle, ExecutionResult, SettlePolicy, Settlement};
use governor_core::snapshot::{
    CapitalState, DecisionRecord, Policy, Snapshot, StoredState, VerdictKind,
};
use governor_core::time::Timestamp;
use governor_core::types::{PlanId, TradingState};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{StateStore, StoreError};
use crate::inputs::MarketInputs;
use governor_core::Plan;

/// A block record as written to `quantum:governor:block:{plan_id}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockRecord {
    /// The stable reason.
    pub reason: BlockReason,
    /// The numbers behind it.
    pub detail: String,
    /// When it was written.
    pub ts: Timestamp,
    /// When it lapses (block TTL).
    pub expires_at: Timestamp,
}

/// An entry that failed the schema, kept with its original fields and the exact error.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The fields as received.
    pub fields: Vec<(String, String)>,
    /// The parser's error.
    pub error: String,
    /// When it was rejected.
    pub ts: Timestamp,
}

/// Everything the embedded store holds. Public for inspection by tests, the replay and the
/// report; changed only through [`MemoryStore`]'s methods.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreState {
    /// The kill switch.
    pub trading_state: TradingState,
    /// The raw `universe_symbols` field of the policy hash (`None`: missing).
    pub policy_universe: Option<String>,
    /// Capital allocation inputs.
    pub capital: CapitalState,
    /// Ledger, reservations, rotations, locks, recent opens: shared with the snapshots read
    /// from it until a commit changes it (then copied only if a snapshot still holds it).
    pub book: Arc<Book>,
    /// The decision of every plan id (the latest: a pending plan's is replaced at its end),
    /// shared with the decisions stream below (one record, two indexes).
    pub decisions: BTreeMap<PlanId, Arc<DecisionRecord>>,
    /// Live permits (single use, TTL).
    pub permits: BTreeMap<PlanId, Permit>,
    /// Block records (TTL).
    pub blocks: BTreeMap<PlanId, BlockRecord>,
    /// The events stream.
    pub events: Vec<Event>,
    /// The decisions stream: one entry per decision, in commit order.
    pub decision_log: Vec<Arc<DecisionRecord>>,
    /// Plans the governor published (rotation closes).
    pub published: Vec<Vec<(String, String)>>,
    /// Rejected entries.
    pub dead_letters: Vec<DeadLetter>,
    /// Results already applied (by plan id).
    pub applied_results: BTreeSet<PlanId>,
    /// The last fencing token handed out.
    pub fence: u64,
    /// Permits ever granted, by plan id (the audit trail behind "never two permits").
    pub permits_granted: BTreeMap<PlanId, u32>,
}

impl StoreState {
    /// The book to change: copied first if a snapshot still shares it.
    pub fn book_mut(&mut self) -> &mut Book {
        Arc::make_mut(&mut self.book)
    }
}

/// The embedded store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<StoreState>,
    block_ttl_secs: u64,
    /// The policy universe as last read, and the text it was read from: a snapshot reads the
    /// text again only when it changed (not once per decision).
    policy: Mutex<(Option<String>, Policy)>,
}

impl MemoryStore {
    /// An empty store: ACTIVE, no policy (so opens are blocked until one is set).
    pub fn new(block_ttl_secs: u64) -> Self {
        Self::with_state(StoreState::default(), block_ttl_secs)
    }

    /// A store holding `state`.
    pub fn with_state(state: StoreState, block_ttl_secs: u64) -> Self {
        MemoryStore {
            state: Mutex::new(state),
            block_ttl_secs,
            policy: Mutex::new((None, Policy::Missing)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        // A panic while holding the lock cannot leave a half-applied commit: effects are applied
        // only after every guard passed, and applying them does not panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the whole state (for tests, reports and the evaluate command).
    pub fn state(&self) -> StoreState {
        self.lock().clone()
    }

    /// Reads the state under the lock without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&StoreState) -> T) -> T {
        f(&self.lock())
    }

    /// Runs `f` on the state under the lock (for operators' writes: policy, kill switch).
    pub fn update<T>(&self, f: impl FnOnce(&mut StoreState) -> T) -> T {
        f(&mut self.lock())
    }

    /// Everything `decide` needs for `plan_id` at `now`, after letting time expire what it
    /// must.
    pub fn snapshot(&self, plan_id: &PlanId, inputs: &MarketInputs, now: Timestamp) -> Snapshot {
        let (state, prior) = self.state_of(Some(plan_id), now);
        inputs.snapshot(state, prior)
    }

    /// The policy universe read from `raw`, as `Policy::from_field` reads it.
    fn policy_of(&self, raw: Option<&str>) -> Policy {
        let mut cached = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0.as_deref() != raw {
            *cached = (raw.map(str::to_owned), Policy::from_field(raw));
        }
        cached.1.clone()
    }

    /// The state after expiry, and the earlier decision of `plan_id`.
    fn state_of(
        &self,
        plan_id: Option<&PlanId>,
        now: Timestamp,
    ) -> (StoredState, Option<DecisionRecord>) {
        let mut st = self.lock();
        self.expire_locked(&mut st, now);
        let state = StoredState {
            trading_state: st.trading_state,
            policy: self.policy_of(st.policy_universe.as_deref()),
            book: st.book.clone(),
            capital: st.capital.clone(),
        };
        let prior = plan_id.and_then(|id| st.decisions.get(id).map(|r| DecisionRecord::clone(r)));
        (state, prior)
    }

    /// Applies a decision's effects if every guard still holds, atomically. Returns the fence
    /// given to its permit, reservation and locks.
    pub fn commit(&self, decision: &Decision, now: Timestamp) -> Result<u64, GuardFailed> {
        let mut st = self.lock();
        self.expire_locked(&mut st, now);
        self.commit_locked(&mut st, decision, now)
    }

    /// Commits `decisions` in order in one critical section, each under its own guards checked
    /// against the state the ones before it left; stops at the first whose guard fails (the
    /// decisions after it were decided on a state that assumed it). One answer per decision
    /// tried: every one but the last is committed.
    pub fn commit_batch(
        &self,
        decisions: &[&Decision],
        now: Timestamp,
    ) -> Vec<Result<u64, GuardFailed>> {
        let mut st = self.lock();
        self.expire_locked(&mut st, now);
        let mut out = Vec::with_capacity(decisions.len());
        for decision in decisions {
            let result = self.commit_locked(&mut st, decision, now);
            let failed = result.is_err();
            out.push(result);
            if failed {
                break;
            }
        }
        out
    }

    fn commit_locked(
        &self,
        st: &mut StoreState,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<u64, GuardFailed> {
        for guard in &decision.guards {
            if !guard_holds(st, guard, now) {
                return Err(GuardFailed(guard.clone()));
            }
        }
        st.fence += 1;
        let fence = st.fence;
        for effect in decision.commit_effects() {
            match effect {
                // The record is the commit's own copy: kept as it is, not copied again (the
                // book holds no records: `commit::apply` passes them by).
                Cow::Owned(Effect::Record(record)) => keep_record(st, record),
                effect => self.apply(st, &effect, fence, now),
            }
        }
        Ok(fence)
    }

    /// Applies an execution result atomically (idempotent: a repeated result changes nothing).
    pub fn settle(
        &self,
        result: &ExecutionResult,
        policy: &SettlePolicy,
        now: Timestamp,
    ) -> Settlement {
        let mut st = self.lock();
        self.expire_locked(&mut st, now);
        let applied = st.applied_results.contains(&result.plan_id);
        let settlement = settle(result, &st.book, applied, policy, now);
        let fence = st.fence;
        if settlement.guards.iter().all(|g| guard_holds(&st, g, now)) {
            for effect in &settlement.effects {
                self.apply(&mut st, effect, fence, now);
            }
        }
        settlement
    }

    /// Lets time reach `now`: expired reservations, locks, rotations and permits go.
    pub fn expire(&self, now: Timestamp) {
        let mut st = self.lock();
        self.expire_locked(&mut st, now);
    }

    /// Records a rejected entry with its original fields and the exact error.
    pub fn dead_letter(&self, fields: &[(String, String)], error: String, now: Timestamp) {
        self.lock().dead_letters.push(DeadLetter {
            fields: fields.to_vec(),
            error,
            ts: now,
        });
    }

    /// Takes a live permit, once: the executor's atomic single use. `None` when absent or
    /// expired.
    pub fn take_permit(&self, plan_id: &PlanId, now: Timestamp) -> Option<Permit> {
        let mut st = self.lock();
        let permit = st.permits.remove(plan_id)?;
        (permit.expires_at > now).then_some(permit)
    }

    /// The pending plan of a rotation, to re-decide it in phase 2.
    pub fn rotation_plan(&self, pending: &PlanId) -> Option<Plan> {
        self.lock()
            .book
            .rotations
            .get(pending)
            .map(|r| r.pending.clone())
    }

    fn expire_locked(&self, st: &mut StoreState, now: Timestamp) {
        st.permits.retain(|_, p| p.expires_at > now);
        st.blocks.retain(|_, b| b.expires_at > now);
        let fence = st.fence;
        for expiry in expire(&st.book, now) {
            if expiry.guards.iter().all(|g| guard_holds(st, g, now)) {
                for effect in &expiry.effects {
                    self.apply(st, effect, fence, now);
                }
            }
        }
    }

    fn apply(&self, st: &mut StoreState, effect: &Effect, fence: u64, now: Timestamp) {
        governor_core::commit::apply(st.book_mut(), effect, fence);
        match effect {
            Effect::Record(record) => keep_record(st, record.clone()),
            Effect::WritePermit(permit) => {
                let mut p = permit.clone();
                p.fence = fence;
                *st.permits_granted.entry(p.plan_id.clone()).or_default() += 1;
                st.permits.insert(p.plan_id.clone(), p);
            }
            Effect::WriteBlock {
                plan_id,
                reason,
                detail,
            } => {
                st.blocks.insert(
                    plan_id.clone(),
                    BlockRecord {
                        reason: *reason,
                        detail: detail.clone(),
                        ts: now,
                        expires_at: now.plus_secs(self.block_ttl_secs),
                    },
                );
            }
            Effect::PublishPlan(fields) => st.published.push(fields.clone()),
            Effect::SetTradingState { to, .. } => st.trading_state = *to,
            Effect::MarkResultApplied { plan_id } => {
                st.applied_results.insert(plan_id.clone());
            }
            Effect::Emit(event) => st.events.push(event.clone()),
            // The book's part was applied above.
            _ => {}
        }
    }
}

/// Keeps a decision's record: the latest of its plan id, and its entry in the decisions stream.
fn keep_record(st: &mut StoreState, record: Arc<DecisionRecord>) {
    st.decisions.insert(record.plan_id.clone(), record.clone());
    st.decision_log.push(record);
}

fn guard_holds(st: &StoreState, guard: &Guard, now: Timestamp) -> bool {
    let book = &st.book;
    match guard {
        Guard::Undecided(id) => !st.decisions.contains_key(id),
        Guard::RotationSlotHeld(id) => {
            st.decisions
                .get(id)
                .is_some_and(|d| d.verdict == VerdictKind::Pending)
                && book
                    .rotations
                    .get(id)
                    .is_some_and(|r| r.phase == RotationPhase::SlotHeld)
        }
        Guard::TradingStateIs(state) => st.trading_state == *state,
        Guard::SlotAvailable {
            symbol,
            side,
            desired,
            unledgered,
        } => {
            // A slot promised to a rotation is no one else's (Book::slot_promised); held in
            // its side, it takes no new slot.
            let slots = book.slots();
            if book.slot_promised(symbol, None) {
                return false;
            }
            match slots.get(symbol) {
                Some(slot) => slot.side == *side,
                None => slots.len() as u64 + u64::from(*unledgered) < u64::from(*desired),
            }
        }
        Guard::ExitLockFree { symbol, holder } => book
            .live_exit_lock(symbol, now)
            .is_none_or(|l| &l.holder == holder),
        Guard::CooldownClear { symbol, since } => {
            book.last_open_at.get(symbol).is_none_or(|t| t <= since)
        }
        Guard::OpensBelow { since, limit } => book.opens_after(*since) < *limit as usize,
        Guard::NoReservationSince(seq) => book.reservation_seq == *seq,
        Guard::ReservationExists(id) => book.reservations.contains_key(id),
        Guard::RotationExists(id) => book.rotations.contains_key(id),
        Guard::RotationAwaitingClose(id) => book
            .rotations
            .get(id)
            .is_some_and(|r| r.phase == RotationPhase::AwaitingClose),
        Guard::NoOpenInFlight(symbol) => book.open_in_flight(symbol).is_none(),
        Guard::ResultNotApplied(id) => !st.applied_results.contains(id),
        Guard::NotInDoubt(id) => !book.in_doubt.contains_key(id),
        Guard::LedgerSettled { symbol, version } => {
            book.ledger_version(symbol) == *version && !book.in_flight(symbol, now)
        }
        Guard::SideSlotsBelow {
            symbol,
            side,
            limit,
            unledgered,
        } => {
            let slots = book.slots();
            match slots.get(symbol) {
                Some(slot) => slot.side == *side,
                None => {
                    let used = slots.values().filter(|s| s.side == *side).count() as u64;
                    used + u64::from(*unledgered) < u64::from(*limit)
                }
            }
        }
    }
}

impl StateStore for MemoryStore {
    fn state(
        &self,
        plans: &[&Plan],
        now: Timestamp,
    ) -> Result<(StoredState, Vec<Option<DecisionRecord>>), StoreError> {
        let (state, _) = self.state_of(None, now);
        let priors = self.read(|st| {
            plans
                .iter()
                .map(|p| {
                    st.decisions
                        .get(&p.plan_id)
                        .map(|r| DecisionRecord::clone(r))
                })
                .collect()
        });
        Ok((state, priors))
    }

    fn commit(
        &self,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<Result<u64, GuardFailed>, StoreError> {
        Ok(MemoryStore::commit(self, decision, now))
    }

    fn commit_many(
        &self,
        decisions: &[&Decision],
        now: Timestamp,
    ) -> Result<Vec<Result<u64, GuardFailed>>, StoreError> {
        Ok(self.commit_batch(decisions, now))
    }

    fn settle(
        &self,
        result: &ExecutionResult,
        policy: &SettlePolicy,
        now: Timestamp,
    ) -> Result<Settlement, StoreError> {
        Ok(MemoryStore::settle(self, result, policy, now))
    }

    fn expire(&self, now: Timestamp) -> Result<(), StoreError> {
        MemoryStore::expire(self, now);
        Ok(())
    }

    fn apply(
        &self,
        guards: &[Guard],
        effects: &[Effect],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        if !guards.iter().all(|g| guard_holds(&st, g, now)) {
            return Ok(false);
        }
        let fence = st.fence;
        for effect in effects {
            MemoryStore::apply(self, &mut st, effect, fence, now);
        }
        Ok(true)
    }

    fn dead_letter(
        &self,
        fields: &[(String, String)],
        error: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        MemoryStore::dead_letter(self, fields, error, now);
        Ok(())
    }

    fn take_permit(&self, plan_id: &PlanId, now: Timestamp) -> Result<Option<Permit>, StoreError> {
        Ok(MemoryStore::take_permit(self, plan_id, now))
    }

    fn is_decided(&self, plan_id: &PlanId) -> Result<bool, StoreError> {
        Ok(self.read(|st| st.decisions.contains_key(plan_id)))
    }

    fn rotation_plan(&self, pending: &PlanId) -> Result<Option<Plan>, StoreError> {
        Ok(MemoryStore::rotation_plan(self, pending))
    }

    fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        Ok(self.read(|st| {
            st.decision_log
                .iter()
                .rev()
                .take(limit)
                .map(|r| DecisionRecord::clone(r))
                .collect()
        }))
    }

    fn decision(&self, plan_id: &PlanId) -> Result<Option<DecisionRecord>, StoreError> {
        Ok(self.read(|st| st.decisions.get(plan_id).map(|r| DecisionRecord::clone(r))))
    }

    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self.read(|st| st.dead_letters.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_the_policy_as_it_is_now_however_often_it_changes() {
        let store = MemoryStore::new(3600);
        let read = || store.state_of(None, Timestamp(0)).0.policy;
        assert_eq!(read(), Policy::Missing);
        let set =
            |raw: Option<&str>| store.update(|st| st.policy_universe = raw.map(str::to_owned));
        set(Some(r#"["BTCUSDT"]"#));
        assert_eq!(read(), Policy::from_field(Some(r#"["BTCUSDT"]"#)));
        assert_eq!(
            read(),
            Policy::from_field(Some(r#"["BTCUSDT"]"#)),
            "read twice"
        );
        set(Some(r#"["ETHUSDT","SOLUSDT"]"#));
        assert_eq!(read(), Policy::from_field(Some(r#"["ETHUSDT","SOLUSDT"]"#)));
        set(Some("[]"));
        assert!(matches!(read(), Policy::Invalid(_)));
        set(None);
        assert_eq!(read(), Policy::Missing);
    }
}

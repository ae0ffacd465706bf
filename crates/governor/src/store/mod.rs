//! State stores: where decisions are committed atomically under their guards.
//!
//! `memory` is the embedded store, the default runtime (the replay and the tests use it);
//! `redis` is the deployment's store: one Lua script applies any commit under its guards. Both apply the same
//! guards and effects, so the same decision means the same thing in either.

pub mod error;
pub mod memory;
pub mod redis;

pub use error::StoreError;

use governor_core::decide::Decision;
use governor_core::effects::{Effect, Guard, GuardFailed, Permit};
use governor_core::results::{ExecutionResult, SettlePolicy, Settlement};
use governor_core::snapshot::{DecisionRecord, StoredState};
use governor_core::time::Timestamp;
use governor_core::types::PlanId;
use governor_core::Plan;

/// What the governor loop needs from a state store.
pub trait StateStore: Send + Sync {
    /// What the store holds for deciding `plans`, after letting time expire what it must:
    /// the shared state once, with each plan's earlier decision (in order). The governor
    /// adds the market inputs ([`MarketInputs::snapshot`](crate::inputs::MarketInputs::snapshot)).
    fn state(
        &self,
        plans: &[&Plan],
        now: Timestamp,
    ) -> Result<(StoredState, Vec<Option<DecisionRecord>>), StoreError>;
    /// Commits a batch decided in order against one snapshot, each decision seeing the effects
    /// of the ones before it, in one round trip: in order, each under its own guards checked
    /// against the state the decisions before it left, stopping at the first whose guard
    /// fails (the decisions after it assumed its effects). One answer per decision tried:
    /// all `Ok` but possibly the last; the decisions after a failure have no answer and are
    /// decided again by the caller.
    fn commit_many(
        &self,
        decisions: &[&Decision],
        now: Timestamp,
    ) -> Result<Vec<Result<u64, GuardFailed>>, StoreError>;
    /// Applies a decision's effects if every guard still holds, atomically; the inner error is
    /// a lost race. Returns the fence given to the commit.
    fn commit(
        &self,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<Result<u64, GuardFailed>, StoreError>;
    /// Applies an execution result atomically and idempotently.
    fn settle(
        &self,
        result: &ExecutionResult,
        policy: &SettlePolicy,
        now: Timestamp,
    ) -> Result<Settlement, StoreError>;
    /// Applies changes that no plan caused (the drawdown monitor) if every guard holds,
    /// atomically. `Ok(false)`: a guard failed (someone changed the state first).
    fn apply(
        &self,
        guards: &[Guard],
        effects: &[Effect],
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Lets time reach `now`: expired reservations, locks and rotations (with their events).
    fn expire(&self, now: Timestamp) -> Result<(), StoreError>;
    /// Records a rejected entry with its original fields and the exact error.
    fn dead_letter(
        &self,
        fields: &[(String, String)],
        error: String,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Whether `plan_id` has a decision already (a redelivered entry may have been decided by
    /// a consumer that died before acknowledging it).
    fn is_decided(&self, plan_id: &PlanId) -> Result<bool, StoreError>;
    /// Takes a live permit, once (the executor's single use).
    fn take_permit(&self, plan_id: &PlanId, now: Timestamp) -> Result<Option<Permit>, StoreError>;
    /// The pending plan of a rotation, to re-decide it in phase 2.
    fn rotation_plan(&self, pending: &PlanId) -> Result<Option<Plan>, StoreError>;
    /// The most recent decisions, newest first, at most `limit` (the API and the dashboard).
    fn recent_decisions(&self, limit: usize) -> Result<Vec<DecisionRecord>, StoreError>;
    /// The stored decision of one plan id, with its trace.
    fn decision(&self, plan_id: &PlanId) -> Result<Option<DecisionRecord>, StoreError>;
    /// Whether the store answers (readiness).
    fn ping(&self) -> Result<(), StoreError>;
    /// How many entries the dead-letter stream holds.
    fn dead_letter_count(&self) -> Result<u64, StoreError>;
}

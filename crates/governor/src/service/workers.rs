//! The loops of the service: plan workers, the result monitor, the sweeper and the reconciler.

use crate::clock::wall_clock;
use crate::governor::{Governor, ResultError, Submission};
use crate::inputs::InputsSource;
use crate::logfmt;
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use crate::streams::consumer::GroupConsumer;
use crate::streams::group::GroupStream;
#[cfg(doc)]
use crate::streams::RECLAIM_IDLE_MS;
use crate::streams::{group_member, next_batch, run_forever, Streams, PLAN_GROUP};
use governor_core::time::Timestamp;
use governor_core::Plan;
use std::sync::Arc;

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Entries handled and acknowledged.
    pub acked: usize,
    /// Entries left pending (store unavailable, or contended): they come back.
    pub left_pending: usize,
}

/// A governor worker on the plan stream: the Redis consumer in the service, a simulated one in
/// the simulator (the same loop either way).
pub struct PlanWorker<C: GroupStream = GroupConsumer> {
    /// The governor (its own store connection).
    pub gov: Governor,
    /// Where the slot views are written for the dashboard and other services (the Redis
    /// store); none in the simulator.
    pub views: Option<Arc<RedisStore>>,
    /// Its consumer in the `governor` group.
    pub consumer: C,
    /// Market and exchange.
    pub inputs: Arc<dyn InputsSource>,
    /// Its clock.
    pub clock: fn() -> Timestamp,
    /// Its name in logs.
    pub name: String,
    /// Entries idle this long are taken over ([`RECLAIM_IDLE_MS`] in production).
    pub reclaim_idle_ms: u64,
}

impl PlanWorker<GroupConsumer> {
    /// A worker named `name` on its own connections to `redis_url`: its store (keys under
    /// `cfg.key_prefix`) and its consumer in the `governor` group, created if missing.
    pub fn connect(
        redis_url: &str,
        cfg: Arc<governor_core::Config>,
        inputs: Arc<dyn InputsSource>,
        name: &str,
        reclaim_idle_ms: u64,
    ) -> Result<Self, StoreError> {
        let plans = Streams::new(&cfg.key_prefix).plans;
        let (consumer, store) = group_member(redis_url, &cfg, &plans, PLAN_GROUP, name)?;
        Ok(PlanWorker {
            gov: Governor::new(cfg, store.clone()),
            views: Some(store),
            consumer,
            inputs,
            clock: wall_clock,
            name: name.to_owned(),
            reclaim_idle_ms,
        })
    }
}

impl<C: GroupStream> PlanWorker<C> {
    /// Reclaims, reads and decides one batch; acknowledges what was decided or dead-lettered.
    pub fn step(&mut self, block_ms: usize) -> Result<BatchCounts, StoreError> {
        let now = (self.clock)();
        let batch = next_batch(
            self.gov.store().as_ref(),
            &mut self.consumer,
            self.reclaim_idle_ms,
            now,
            block_ms,
        )?;
        let mut counts = BatchCounts::default();
        if batch.is_empty() {
            return Ok(counts);
        }
        let now = (self.clock)();
        let inputs = self.inputs.inputs(now);
        let mut acks = Vec::with_capacity(batch.len());
        let mut last_view = None;
        // Parse first: a malformed entry is dead-lettered on its own; the rest is decided as a batch.
        let mut plans = Vec::with_capacity(batch.len());
        let mut plan_entries = Vec::with_capacity(batch.len());
        for entry in batch {
            match entry.checked().and_then(Plan::parse) {
                Ok(plan) => {
                    plans.push(plan);
                    plan_entries.push(entry);
                }
                Err(rejection) => {
                    let error = rejection.to_string();
                    if let Err(e) = self
                        .gov
                        .store()
                        .dead_letter(&entry.fields, error.clone(), now)
                    {
                        self.consumer.ack(&acks)?;
                        return Err(e);
                    }
                    logfmt::line("REJECTED", &[("id", entry.id.clone()), ("error", error)]);
                    acks.push(entry.id);
                }
            }
        }
        let mut unavailable = None;
        // The batch's decision lines go to the log in one hand-over, not one per decision.
        let mut log = String::new();
        let started = std::time::Instant::now();
        let submissions = self.gov.decide_batch(&plans, &inputs, now);
        // Decisions of a batch share its time: each is counted with its share.
        let each = started.elapsed() / submissions.len().max(1) as u32;
        for (entry, submission) in plan_entries.into_iter().zip(submissions) {
            match submission {
                Submission::Decided { decision, fence } => {
                    if fence.is_some() {
                        let score = entry
                            .fields
                            .iter()
                            .find(|(k, _)| k == "score")
                            .and_then(|(_, v)| v.parse().ok());
                        log.push_str(&logfmt::decision_line(
                            &decision.record,
                            &decision.trace,
                            score,
                        ));
                        crate::metrics::global().observe(&decision.record, each);
                        if let (Some(d), Some(o)) = (
                            decision.record.desired_slots,
                            decision.record.occupied_slots,
                        ) {
                            last_view =
                                Some((d, o, decision.record.regime.clone().unwrap_or_default()));
                        }
                    }
                    acks.push(entry.id);
                }
                Submission::Rejected(_) => acks.push(entry.id),
                Submission::Contended { attempts } => {
                    logfmt::line(
                        "CONTENDED",
                        &[("id", entry.id.clone()), ("attempts", attempts.to_string())],
                    );
                    counts.left_pending += 1;
                }
                // What was decided before the store went away is acknowledged; the rest stays
                // pending and comes back.
                Submission::StoreUnavailable(e) => unavailable = Some(e),
            }
        }
        logfmt::write_stdout(&log);
        if let Some(e) = unavailable {
            self.consumer.ack(&acks)?;
            return Err(e);
        }
        self.consumer.ack(&acks)?;
        counts.acked += acks.len();
        if let (Some(views), Some((desired, occupied, regime))) = (&self.views, last_view) {
            views.set_views(desired, occupied, &regime)?;
        }
        Ok(counts)
    }

    /// Runs until the process ends.
    pub fn run(mut self) {
        let name = self.name.clone();
        run_forever(&name, std::time::Duration::ZERO, || self.step(500));
    }
}

/// The result monitor on `apply.result`.
pub struct ResultWorker<C: GroupStream = GroupConsumer> {
    /// The governor (phase 2 of rotations is decided here).
    pub gov: Governor,
    /// Its consumer in the `governor-results` group.
    pub consumer: C,
    /// Market and exchange.
    pub inputs: Arc<dyn InputsSource>,
    /// Its clock.
    pub clock: fn() -> Timestamp,
    /// Entries idle this long are taken over ([`RECLAIM_IDLE_MS`] in production).
    pub reclaim_idle_ms: u64,
}

impl<C: GroupStream> ResultWorker<C> {
    /// Applies one batch of results.
    pub fn step(&mut self, block_ms: usize) -> Result<usize, StoreError> {
        let now = (self.clock)();
        let batch = next_batch(
            self.gov.store().as_ref(),
            &mut self.consumer,
            self.reclaim_idle_ms,
            now,
            block_ms,
        )?;
        let inputs = self.inputs.inputs(now);
        let mut acks = Vec::new();
        for entry in batch {
            let outcome = match entry.checked() {
                Ok(fields) => self.gov.on_result(fields, &inputs, now),
                Err(rejection) => self
                    .gov
                    .store()
                    .dead_letter(&entry.fields, rejection.describe("result"), now)
                    .map_err(ResultError::Store)
                    .and(Err(ResultError::Rejected(rejection))),
            };
            match outcome {
                Ok(outcome) => {
                    logfmt::line(
                        "RESULT_APPLIED",
                        &[
                            ("id", entry.id.clone()),
                            ("note", outcome.settlement.note.clone()),
                        ],
                    );
                    if let Some(Submission::Decided { decision, .. }) = &outcome.phase2 {
                        logfmt::decision(&decision.record, &decision.trace, None);
                    }
                    acks.push(entry.id);
                }
                Err(ResultError::Rejected(r)) => {
                    logfmt::line(
                        "REJECTED_RESULT",
                        &[("id", entry.id.clone()), ("error", r.to_string())],
                    );
                    acks.push(entry.id);
                }
                Err(ResultError::Store(e)) => {
                    self.consumer.ack(&acks)?;
                    return Err(e);
                }
            }
        }
        let n = acks.len();
        self.consumer.ack(&acks)?;
        Ok(n)
    }

    /// Runs until the process ends.
    pub fn run(mut self) {
        run_forever("results", std::time::Duration::ZERO, || self.step(500));
    }
}

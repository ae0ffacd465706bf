//! The governor loop: parse strictly (dead-letter what fails), snapshot, decide purely, commit
//! atomically; a failed guard means another governor won a race, so re-read and decide again,
//! a bounded number of times. It runs the same over the embedded store and over Redis.

use crate::inputs::MarketInputs;
use crate::store::{StateStore, StoreError};
use governor_core::commit;
use governor_core::decide::{decide, decide_on, Decision};
use governor_core::gates::portfolio::SharedView;
use governor_core::plan::PlanRejection;
use governor_core::results::{ExecutionResult, SettlePolicy, Settlement};
use governor_core::time::Timestamp;
use governor_core::{Config, Plan};
use std::sync::Arc;

/// The outcome of submitting one plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Submission {
    /// Decided and committed (or replayed, when the plan id was decided before).
    Decided {
        /// The decision.
        decision: Box<Decision>,
        /// The fence its commit received (`None` for a replay, which commits nothing).
        fence: Option<u64>,
    },
    /// The schema refused it; it is in the dead-letter record.
    Rejected(PlanRejection),
    /// Lost the race more times than allowed: nothing was committed, the plan stays
    /// undecided (in a stream it stays pending and is retried).
    Contended {
        /// How many times it tried.
        attempts: u32,
    },
    /// The store could not be reached: nothing was committed or recorded; retry later.
    StoreUnavailable(StoreError),
}

/// What applying one execution result did.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultOutcome {
    /// The store changes.
    pub settlement: Settlement,
    /// The re-decision of a rotation's pending plan (phase 2), if the result completed one.
    pub phase2: Option<Submission>,
}

/// Why a result could not be applied.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResultError {
    /// The result failed the schema (it is dead-lettered).
    #[error("{0}")]
    Rejected(PlanRejection),
    /// The store could not be reached: retry later.
    #[error("{0}")]
    Store(StoreError),
}

/// One governor instance over a shared store. Several instances may share a store: the
/// store's guards keep them from overcommitting it.
#[derive(Clone)]
pub struct Governor {
    cfg: Arc<Config>,
    store: Arc<dyn StateStore>,
    max_attempts: u32,
}

impl Governor {
    /// How many times a decision is retried after losing a race before it is left undecided.
    /// Every concurrent permit makes the others re-decide (the money caps depend on it), so
    /// with several instances a plan may lose a few races in a row; leaving it undecided sends
    /// it back through the stream, where each redelivery counts toward the dead-letter limit.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 32;

    /// A governor deciding with `cfg` over `store`.
    pub fn new(cfg: Arc<Config>, store: Arc<dyn StateStore>) -> Self {
        Governor {
            cfg,
            store,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The store it commits to.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The config it decides with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Parses and decides one plan given as stream fields.
    pub fn submit(
        &self,
        fields: &[(String, String)],
        inputs: &MarketInputs,
        now: Timestamp,
    ) -> Submission {
        match Plan::parse(fields) {
            Ok(plan) => self.decide_plan(&plan, inputs, now),
            Err(rejection) => match self.store.dead_letter(fields, rejection.to_string(), now) {
                Ok(()) => Submission::Rejected(rejection),
                Err(e) => Submission::StoreUnavailable(e),
            },
        }
    }

    /// Decides a parsed plan: snapshot, decide, commit; again on a lost race.
    pub fn decide_plan(&self, plan: &Plan, inputs: &MarketInputs, now: Timestamp) -> Submission {
        for _ in 0..self.max_attempts {
            let snapshot = match self.store.state(&[plan], now) {
                Ok((state, mut priors)) => inputs.snapshot(state, priors.pop().flatten()),
                Err(e) => return Submission::StoreUnavailable(e),
            };
            let decision = decide(plan, &snapshot, &self.cfg, now);
            // The snapshot shares the store's book: let it go before the commit changes the
            // book, so that the commit does not have to copy it.
            drop(snapshot);
            if decision.replayed {
                return Submission::Decided {
                    decision: Box::new(decision),
                    fence: None,
                };
            }
            match self.store.commit(&decision, now) {
                Ok(Ok(fence)) => {
                    return Submission::Decided {
                        decision: Box::new(decision),
                        fence: Some(fence),
                    }
                }
                Ok(Err(_lost_race)) => {
                    // Let the winner's commit land before reading again.
                    std::thread::yield_now();
                    continue;
                }
                Err(e) => return Submission::StoreUnavailable(e),
            }
        }
        Submission::Contended {
            attempts: self.max_attempts,
        }
    }

    /// Decides a batch of parsed plans in one read and one commit: the snapshot is read once,
    /// the plans are decided in order against it with each decision's effects applied to the
    /// in-memory copy (the second plan sees the first one's reservation), and the batch is
    /// committed in one call in which each decision's guards are checked against the state
    /// the decisions before it left. When a guard fails (another governor changed the state
    /// in between), that decision and every one after it — each may have counted on it — are
    /// decided again on a fresh read; the ones before it stand. The answers are in the order
    /// of `plans`.
    pub fn decide_batch(
        &self,
        plans: &[Plan],
        inputs: &MarketInputs,
        now: Timestamp,
    ) -> Vec<Submission> {
        let mut out: Vec<Option<Submission>> = vec![None; plans.len()];
        let mut start = 0;
        let mut lost_in_a_row = 0;
        while start < plans.len() {
            let rest: Vec<&Plan> = plans[start..].iter().collect();
            let (mut snapshot, priors) = match self.store.state(&rest, now) {
                Ok((state, priors)) => (inputs.snapshot(state, None), priors),
                Err(e) => {
                    for slot in out.iter_mut().skip(start) {
                        *slot = Some(Submission::StoreUnavailable(e.clone()));
                    }
                    break;
                }
            };
            let mut decided: Vec<(usize, Decision)> = Vec::with_capacity(rest.len());
            // Where in `decided` each plan id of this batch was decided: a plan id that comes
            // again sees that decision as its prior (its record is only rendered then).
            let mut decided_here: std::collections::BTreeMap<&governor_core::types::PlanId, usize> =
                std::collections::BTreeMap::new();
            let mut offset = 0;
            while offset < rest.len() {
                // One portfolio view for the plans decided until one changes the snapshot: it
                // borrows the book, so the borrow checker lets it go before that decision is
                // absorbed, and the next plans get a view of the changed book.
                let view =
                    SharedView::new(&snapshot.book, snapshot.exchange.as_ref(), &snapshot.market);
                let mut changed = false;
                while offset < rest.len() && !changed {
                    let plan = rest[offset];
                    snapshot.prior = match decided_here.get(&plan.plan_id) {
                        Some(&at) => Some(decided[at].1.committed_record()),
                        None => priors[offset].clone(),
                    };
                    let decision = decide_on(plan, &snapshot, &view, &self.cfg, now);
                    offset += 1;
                    if decision.replayed {
                        out[start + offset - 1] = Some(Submission::Decided {
                            decision: Box::new(decision),
                            fence: None,
                        });
                        continue;
                    }
                    changed = decision.effects.iter().any(commit::changes_snapshot);
                    decided_here.insert(&plan.plan_id, decided.len());
                    decided.push((start + offset - 1, decision));
                }
                drop(view);
                if changed {
                    let (_, last) = decided.last().expect("the decision that changed it");
                    commit::absorb(&mut snapshot, last);
                }
            }
            let batch: Vec<&Decision> = decided.iter().map(|(_, d)| d).collect();
            let committed = self.store.commit_many(&batch, now);
            let batch_len = batch.len();
            drop(batch);
            let answers = match committed {
                Ok(answers) => answers,
                Err(e) => {
                    for (i, _) in decided {
                        out[i] = Some(Submission::StoreUnavailable(e.clone()));
                    }
                    break;
                }
            };
            let tried = answers.len();
            let mut decided = decided.into_iter();
            let mut lost_at = None;
            for (answer, (i, decision)) in answers.into_iter().zip(decided.by_ref()) {
                match answer {
                    Ok(fence) => {
                        out[i] = Some(Submission::Decided {
                            decision: Box::new(decision),
                            fence: Some(fence),
                        })
                    }
                    Err(_lost_race) => lost_at = Some(i),
                }
            }
            debug_assert!(tried == batch_len || lost_at.is_some());
            let Some(i) = lost_at else { break };
            // Lost a race at plan i: it and the plans after it are decided again. A plan that
            // keeps losing is left undecided (it stays pending in its stream) so that the rest
            // of the batch is not held up behind it.
            lost_in_a_row = if i == start { lost_in_a_row + 1 } else { 1 };
            start = i;
            if lost_in_a_row >= self.max_attempts {
                out[i] = Some(Submission::Contended {
                    attempts: self.max_attempts,
                });
                start = i + 1;
                lost_in_a_row = 0;
            } else {
                // Let the winner's commit land before reading again.
                std::thread::yield_now();
            }
        }
        out.into_iter()
            .map(|s| s.expect("every plan of the batch is answered"))
            .collect()
    }

    /// Applies an execution result; when it confirms a rotation's close, re-decides the
    /// pending plan at once (phase 2) — upstream need not resend it.
    pub fn on_result(
        &self,
        fields: &[(String, String)],
        inputs: &MarketInputs,
        now: Timestamp,
    ) -> Result<ResultOutcome, ResultError> {
        let result = match ExecutionResult::parse(fields) {
            Ok(r) => r,
            Err(rejection) => {
                self.store
                    .dead_letter(fields, rejection.to_string(), now)
                    .map_err(ResultError::Store)?;
                return Err(ResultError::Rejected(rejection));
            }
        };
        let settlement = self
            .store
            .settle(&result, &SettlePolicy::of(&self.cfg), now)
            .map_err(ResultError::Store)?;
        let pending = match &settlement.redecide {
            Some(id) => self.store.rotation_plan(id).map_err(ResultError::Store)?,
            None => None,
        };
        let phase2 = pending.map(|plan| self.decide_plan(&plan, inputs, now));
        Ok(ResultOutcome { settlement, phase2 })
    }

    /// Lets time reach `now` (expiries, rotation timeouts) without a plan.
    pub fn tick(&self, now: Timestamp) -> Result<(), StoreError> {
        self.store.expire(now)
    }

    /// The account monitors: the drawdown monitor records the account's equity peak and, in
    /// enforce mode, halts (REDUCING, `drawdown_halt`) or resumes by itself; the de-risk
    /// monitor halts above the account margin ratio's de-risk line and publishes close plans
    /// until it is back under. Returns how many changes they applied. Without an account view
    /// they do nothing (no equity is guessed).
    pub fn observe(&self, inputs: &MarketInputs, now: Timestamp) -> Result<usize, StoreError> {
        let Some(equity) = inputs.exchange.as_ref().map(|x| x.equity_usdt) else {
            return Ok(0);
        };
        let snap = inputs.snapshot(self.store.state(&[], now)?.0, None);
        let mut applied = 0;
        for o in governor_core::gates::drawdown::observe(
            &snap.book,
            snap.trading_state,
            equity,
            &self.cfg,
            now,
        ) {
            applied += usize::from(self.store.apply(&o.guards, &o.effects, now)?);
        }
        // On the same snapshot: a halt the drawdown monitor just set fails the de-risk
        // monitor's guard (trading is no longer ACTIVE), so the two never both halt.
        for o in governor_core::derisk::observe(&snap, &self.cfg, now) {
            applied += usize::from(self.store.apply(&o.guards, &o.effects, now)?);
        }
        Ok(applied)
    }
}

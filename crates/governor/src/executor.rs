//! The permit-checked executor (`quantum-governor execute`, or `serve --with-executor`): a
//! consumer in the `executor` group of the plan stream. For each executing plan it waits a
//! bounded time for the governor's permit, takes it atomically (GETDEL: one use, by one
//! executor), refuses an expired one, places the order (reduce-only on closes; `PARTIAL_n`
//! closes n % of the exchange's position, rounded down to the step; quantities below the
//! symbol's minimums are refused before anything is sent), confirms the fill, applies the
//! result to the ledger through the governor's own idempotent settlement, and publishes
//! `apply.result` — also when the order failed, with the exchange's error.
//!
//! Before the order is sent, its in-doubt record is written ([`crate::orders`]): an order whose
//! answer is unknown (a timeout, a 5xx, -1007, an unreadable answer) is asked for by its client
//! id with bounded back-off and never sent twice; while unknown, its reservation stays held; if
//! it is still unknown when the executor gives up, the reconciler settles it later.
//!
//! A plan without a permit is never executed: blocked, skipped, or not decided in time; nor is
//! one whose permit lapsed before its order could be sent. On a Redis Cluster a permit is used
//! only once a replica holds its take (`permit_replicas`): a replica receives its master's
//! writes in order, so it then holds the commit that granted the permit too, and a failover can
//! lose neither — no order for a permit the new master does not know, none for a permit it
//! would hand out again. A take no replica confirms in time is put back unused and its plan
//! tried again later.

use crate::exchange::{Exchange, Fill, OrderError, OrderRequest};
use crate::logfmt;
use crate::orders::{self, Known, ResolvePolicy, ResolvedBy};
use crate::store::redis::RedisStore;
use crate::store::{StateStore, StoreError};
use crate::streams::consumer::{Entry, GroupConsumer};
use crate::streams::{group_member, next_batch, run_forever};
use governor_core::book::OrderInDoubt;
use governor_core::effects::Permit;
use governor_core::plan::{Action, CloseKind};
use governor_core::snapshot::VerdictKind;
use governor_core::time::Timestamp;
use governor_core::{Config, Plan};
use std::sync::Arc;
use std::time::Duration;

/// The plan stream's consumer group of executors.
pub const EXECUTOR_GROUP: &str = "executor";

/// How an executor runs.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// Wait this long for a permit after the plan arrives (a rotation's pending plan waits
    /// for its rotation lock's lifetime instead).
    pub permit_wait: Duration,
    /// Entries idle this long are taken over from a dead executor.
    pub reclaim_idle_ms: u64,
    /// The consumer group (`executor`; tests run two groups to show a permit is used once).
    pub group: String,
    /// The first wait before asking again for an order whose outcome is unknown (it doubles,
    /// up to 5 s); the executor asks until the permit's life is over and the exchange's request
    /// window has passed, then leaves the order to the reconciler.
    pub resolve_first_wait: Duration,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            permit_wait: Duration::from_secs(5),
            reclaim_idle_ms: crate::streams::RECLAIM_IDLE_MS,
            group: EXECUTOR_GROUP.to_owned(),
            resolve_first_wait: Duration::from_millis(200),
        }
    }
}

/// What happened to one plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Not an order to place (schema error, not EXECUTE, UPDATE_SL, HOLD).
    NotExecutable,
    /// The governor did not permit it (block, skip, no decision in time, permit gone).
    NotPermitted(String),
    /// The order filled.
    Filled(Fill),
    /// The order failed (or was refused before sending); the result says why.
    Failed(String),
    /// The order's outcome is still unknown after asking the exchange for as long as the
    /// permit allowed: no result is published, its in-doubt record holds its reservation, and
    /// the reconciler settles it.
    Unknown(String),
}

/// One executor.
pub struct Executor<E: Exchange> {
    exchange: E,
    store: Arc<RedisStore>,
    consumer: GroupConsumer,
    cfg: Arc<Config>,
    opts: ExecutorOptions,
    clock: fn() -> Timestamp,
    name: String,
}

impl<E: Exchange> Executor<E> {
    /// An executor named `name` on `url`, placing orders on `exchange`.
    pub fn connect(
        url: &str,
        cfg: Arc<Config>,
        exchange: E,
        name: &str,
        opts: ExecutorOptions,
        clock: fn() -> Timestamp,
    ) -> Result<Self, StoreError> {
        let stream = format!("{}stream:apply.plan", cfg.key_prefix);
        let (consumer, store) = group_member(url, &cfg, &stream, &opts.group, name)?;
        Ok(Executor {
            exchange,
            store,
            consumer,
            cfg,
            opts,
            clock,
            name: name.to_owned(),
        })
    }

    /// Handles one batch of plans; returns what happened to each.
    pub fn step(&mut self, block_ms: usize) -> Result<Vec<(String, Outcome)>, StoreError> {
        let now = (self.clock)();
        let batch = next_batch(
            self.store.as_ref(),
            &mut self.consumer,
            self.opts.reclaim_idle_ms,
            now,
            block_ms,
        )?;
        let mut out = Vec::with_capacity(batch.len());
        for entry in batch {
            let outcome = match self.handle(&entry) {
                Ok(outcome) => outcome,
                // The permit went back unused: the entry stays pending, to be taken again
                // after the idle time (by this executor or another), within the permit's life.
                Err(StoreError::NotReplicated(why)) => {
                    logfmt::line(
                        "EXECUTOR_PERMIT_NOT_REPLICATED",
                        &[("entry", entry.id.clone()), ("why", why)],
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.consumer.ack(std::slice::from_ref(&entry.id))?;
            out.push((entry.id, outcome));
        }
        Ok(out)
    }

    /// Runs until the process ends.
    pub fn run(mut self) {
        let name = self.name.clone();
        run_forever(&name, Duration::ZERO, || self.step(500));
    }

    fn handle(&mut self, entry: &Entry) -> Result<Outcome, StoreError> {
        let Ok(plan) = entry.checked().and_then(Plan::parse) else {
            return Ok(Outcome::NotExecutable); // the governor dead-letters it
        };
        if !plan.execute || !(plan.action.is_open() || plan.action.is_close()) {
            return Ok(Outcome::NotExecutable);
        }
        let permit = match self.wait_for_permit(&plan)? {
            Ok(p) => p,
            Err(why) => {
                logfmt::line(
                    "EXECUTOR_NOT_PERMITTED",
                    &[
                        ("plan", plan.plan_id.to_string()),
                        ("symbol", plan.symbol.to_string()),
                        ("why", why.clone()),
                    ],
                );
                return Ok(Outcome::NotPermitted(why));
            }
        };
        self.mark_in_doubt(&plan, &permit, "about to be sent")?;
        let (known, resolved_by) = match orders::outcome_of(self.place(&plan, &permit)) {
            Ok(known) => (known, ResolvedBy::Answer),
            Err(why) => match self.resolve(&plan, &permit, &why)? {
                Ok(known) => (known, ResolvedBy::Query),
                Err(last) => return Ok(Outcome::Unknown(last)),
            },
        };
        let now = (self.clock)();
        let fields = orders::result_fields(
            &plan.plan_id,
            &permit.symbol,
            &permit.action,
            plan.action.is_close(),
            &known,
            resolved_by,
            now,
        );
        orders::publish_result(&self.store, &self.cfg, &fields, now)?;
        let (token, detail, outcome) = match known {
            Known::Filled(f) => (
                "EXECUTED",
                format!("{} at {}", f.qty, f.avg_price),
                Outcome::Filled(f),
            ),
            Known::NotFilled(why) => ("EXECUTION_FAILED", why.clone(), Outcome::Failed(why)),
        };
        logfmt::line(
            token,
            &[
                ("plan", plan.plan_id.to_string()),
                ("symbol", plan.symbol.to_string()),
                ("action", permit.action.clone()),
                ("resolved_by", resolved_by.as_str().to_owned()),
                ("detail", detail),
            ],
        );
        Ok(outcome)
    }

    /// Writes (or rewrites, with the latest reason) the order's in-doubt record: its
    /// reservation is held, and the reconciler settles it if this executor cannot.
    fn mark_in_doubt(&self, plan: &Plan, permit: &Permit, why: &str) -> Result<(), StoreError> {
        let now = (self.clock)();
        orders::mark_in_doubt(
            self.store.as_ref(),
            &plan.plan_id,
            OrderInDoubt {
                symbol: permit.symbol.clone(),
                action: permit.action.clone(),
                since: now,
                send_deadline: permit.expires_at,
                why: why.to_owned(),
            },
            now,
        )
    }

    /// Asks the exchange for an order whose answer was unknown, until its outcome is known or
    /// the permit's life and the exchange's request window are over (`Err`: still unknown, left
    /// in doubt for the reconciler).
    fn resolve(
        &self,
        plan: &Plan,
        permit: &Permit,
        why: &str,
    ) -> Result<Result<Known, String>, StoreError> {
        let now = (self.clock)();
        let fields = [
            ("plan", plan.plan_id.to_string()),
            ("symbol", permit.symbol.to_string()),
            ("why", why.to_owned()),
        ];
        logfmt::line("ORDER_IN_DOUBT", &fields);
        self.mark_in_doubt(plan, permit, why)?;
        let window = self.exchange.request_window();
        let permit_left = Duration::from_millis(
            permit
                .expires_at
                .millis()
                .saturating_sub(now.millis())
                .max(0) as u64,
        );
        let policy = ResolvePolicy {
            first_wait: self.opts.resolve_first_wait,
            max_wait: Duration::from_secs(5),
            give_up_after: permit_left.max(window) + window,
            absent_after: window,
        };
        let resolved = orders::resolve(
            &self.exchange,
            &permit.symbol,
            &plan.plan_id,
            &policy,
            std::thread::sleep,
        );
        if let Err(last) = &resolved {
            logfmt::line(
                "ORDER_STILL_UNKNOWN",
                &[
                    ("plan", plan.plan_id.to_string()),
                    ("symbol", permit.symbol.to_string()),
                    ("last", last.clone()),
                ],
            );
        }
        Ok(resolved)
    }

    /// Takes the plan's permit, waiting for the governor's decision a bounded time.
    fn wait_for_permit(&self, plan: &Plan) -> Result<Result<Permit, String>, StoreError> {
        let started = std::time::Instant::now();
        let rotation_wait = Duration::from_secs(self.cfg.slots.rotation_lock_ttl_secs + 5);
        loop {
            let now = (self.clock)();
            if let Some(permit) = self.store.take_permit(&plan.plan_id, now)? {
                return Ok(Ok(permit));
            }
            let decision = self.store.decision(&plan.plan_id)?;
            let limit = match decision.as_ref().map(|d| d.verdict) {
                Some(VerdictKind::Block | VerdictKind::Skip | VerdictKind::Reject) => {
                    let d = decision.expect("matched");
                    let reason = d.reason.map_or(d.detail.clone(), |r| r.code().to_owned());
                    return Ok(Err(format!("{}: {reason}", d.verdict.as_str())));
                }
                // Allowed: the decision and its permit are committed together, so the permit
                // is there now unless another executor used it or it expired.
                Some(VerdictKind::Allow) => {
                    return Ok(self
                        .store
                        .take_permit(&plan.plan_id, (self.clock)())?
                        .ok_or_else(|| "permit already used or expired".to_owned()));
                }
                Some(VerdictKind::Pending) => rotation_wait,
                None => self.opts.permit_wait,
            };
            if started.elapsed() >= limit {
                return Ok(Err(format!(
                    "no permit within {:.1} s",
                    limit.as_secs_f64()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sizes and places the order the permit allows (never once the permit has lapsed: the
    /// in-doubt record promises the reconciler that nothing is sent after its expiry).
    fn place(&mut self, plan: &Plan, permit: &Permit) -> Result<Fill, OrderError> {
        let filters = self
            .exchange
            .filters(&permit.symbol)
            .map_err(|e| OrderError::Refused(e.to_string()))?;
        let (side, qty, price, reduce_only, leverage) = match plan.action {
            Action::Open(side) => {
                let price = if permit.qty > 0.0 {
                    permit.notional / permit.qty
                } else {
                    0.0
                };
                let leverage = plan.leverage.unwrap_or(self.cfg.funds.default_leverage);
                (side, permit.qty, price, false, leverage)
            }
            Action::Close(kind) => {
                let account = self.exchange.account().map_err(|e| {
                    OrderError::Refused(format!("cannot read the position to close: {e}"))
                })?;
                let Some(p) = account.positions.get(&permit.symbol) else {
                    return Err(OrderError::Refused(format!(
                        "no {} position on the exchange to close",
                        permit.symbol
                    )));
                };
                let share = match kind {
                    CloseKind::Full => 1.0,
                    partial => partial.fraction(),
                };
                (p.side, p.qty * share, p.mark_price, true, p.leverage)
            }
            Action::UpdateSl | Action::Hold => unreachable!("filtered out before"),
        };
        let qty = filters
            .order_qty(qty, price, reduce_only)
            .map_err(OrderError::Refused)?;
        let order = OrderRequest {
            client_id: plan.plan_id.clone(),
            symbol: permit.symbol.clone(),
            side,
            qty: qty.value,
            reduce_only,
            leverage,
        };
        orders::still_permitted(permit.expires_at, (self.clock)())?;
        self.exchange.place_order(&order)
    }
}

//! The permit-checked executor (`quantum-governor execute`, or `serve --with-executor`): a
//! consumer in the `executor` group of the plan stream. For each executing plan it waits a
//! bounded time for the governor's permit, takes it atomically (GETDEL: one use, by one
//! executor), refuses an expired one, places the order (reduce-only on closes; `PARTIAL_n`
//! closes n % of the exchange's position, rounded down to the step; quantities below the
//! symbol's minimums are refused before anything is sent), confirms the fill, applies the
//! result to the ledger through the governor's own idempotent settlement, and publishes
//! `apply.result` — also when the order failed, with the exchange's error.
//!
//! A plan without a permit is never executed: blocked, skipped, or not decided in time.

use crate::exchange::{Exchange, Fill, OrderError, OrderRequest};
use crate::logfmt;
use crate::service::consumer::{Entry, GroupConsumer};
use crate::service::workers::{group_member, next_batch, run_forever};
use crate::store::redis::RedisStore;
use crate::store::{StateStore, StoreError};
use governor_core::effects::Permit;
use governor_core::plan::{Action, CloseKind};
use governor_core::results::{ExecutionResult, SettlePolicy};
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
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            permit_wait: Duration::from_secs(5),
            reclaim_idle_ms: crate::service::RECLAIM_IDLE_MS,
            group: EXECUTOR_GROUP.to_owned(),
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

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
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
            let outcome = self.handle(&entry)?;
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
        let Ok(plan) = Plan::parse(&entry.fields) else {
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
        let now = (self.clock)();
        let placed = self.place(&plan, &permit);
        let (fields, outcome) = result_fields(&plan, &permit, &placed, now);
        let result = ExecutionResult::parse(&fields).map_err(err)?;
        self.store
            .settle(&result, &SettlePolicy::of(&self.cfg), now)?;
        let key = self.store.key("stream:apply.result");
        self.store.with_conn(|c| {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&key).arg("MAXLEN").arg("~").arg(100_000).arg("*");
            for (k, v) in &fields {
                cmd.arg(k).arg(v);
            }
            cmd.query::<String>(c).map(drop)
        })?;
        let (token, detail) = match &outcome {
            Outcome::Filled(f) => ("EXECUTED", format!("{} at {}", f.qty, f.avg_price)),
            Outcome::Failed(why) => ("EXECUTION_FAILED", why.clone()),
            _ => unreachable!("placed orders fill or fail"),
        };
        logfmt::line(
            token,
            &[
                ("plan", plan.plan_id.to_string()),
                ("symbol", plan.symbol.to_string()),
                ("action", permit.action.clone()),
                ("detail", detail),
            ],
        );
        Ok(outcome)
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

    /// Sizes and places the order the permit allows.
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
        self.exchange.place_order(&order)
    }
}

/// The `apply.result` entry of CONTRACT.md for an order's outcome.
fn result_fields(
    plan: &Plan,
    permit: &Permit,
    placed: &Result<Fill, OrderError>,
    now: Timestamp,
) -> (Vec<(String, String)>, Outcome) {
    let mut f: Vec<(String, String)> = vec![
        ("plan_id".into(), plan.plan_id.to_string()),
        ("symbol".into(), permit.symbol.to_string()),
        ("reduceOnly".into(), plan.action.is_close().to_string()),
        ("action".into(), permit.action.clone()),
        ("ts".into(), (now.millis() / 1000).to_string()),
    ];
    let outcome = match placed {
        Ok(fill) => {
            f.push(("executed".into(), "true".into()));
            f.push(("filled_qty".into(), fill.qty.to_string()));
            f.push(("avg_price".into(), fill.avg_price.to_string()));
            Outcome::Filled(fill.clone())
        }
        Err(e) => {
            f.push(("executed".into(), "false".into()));
            f.push(("filled_qty".into(), "0".into()));
            f.push(("avg_price".into(), "0".into()));
            f.push(("error".into(), e.to_string()));
            Outcome::Failed(e.to_string())
        }
    };
    (f, outcome)
}

//! The contract's streams and consumer groups, and what every stream worker of the service
//! and the executor is built from: joining a group with a store connection, the next batch
//! (reclaimed entries first, poisoned ones dead-lettered), and the step loop that logs the
//! store's health once per change.

pub mod consumer;
pub mod group;
pub mod heartbeat;

use crate::logfmt;
use crate::store::redis::RedisStore;
use crate::store::{StateStore, StoreError};
use consumer::{Entry, GroupConsumer};
use governor_core::time::Timestamp;
use governor_core::types::PlanId;
use group::GroupStream;
use std::sync::Arc;

/// Stream and group names of the contract under a key prefix.
#[derive(Clone, Debug)]
pub struct Streams {
    /// Plans in (and rotation closes out).
    pub plans: String,
    /// Execution results in.
    pub results: String,
}

impl Streams {
    /// The contract's streams under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Streams {
            plans: format!("{prefix}stream:apply.plan"),
            results: format!("{prefix}stream:apply.result"),
        }
    }
}

/// The plan stream's consumer group.
pub const PLAN_GROUP: &str = "governor";
/// The result stream's consumer group.
pub const RESULT_GROUP: &str = "governor-results";
/// Entries idle this long are taken over from their consumer (well above the slowest decision).
pub const RECLAIM_IDLE_MS: u64 = 30_000;
/// An entry delivered this many times is dead-lettered instead of tried again.
pub const MAX_DELIVERIES: usize = 5;

/// Entries read per batch. A batch pays a fixed cost (its read, its state read, its commit call,
/// its acknowledgement): at 128 two instances decided 1.04–1.10× the comparable EVAL's rate, at
/// 64 0.73–0.95× (BENCHMARKS.md). A full batch's commit script holds Redis for about 4 ms; a
/// partial batch is decided at once.
pub const BATCH: usize = 128;

/// Remembers whether the store was reachable, to log each change of state once.
#[derive(Default)]
pub struct Health {
    down: bool,
}

impl Health {
    /// Records a failure (logged the first time).
    pub fn failed(&mut self, who: &str, e: &StoreError) {
        if !self.down {
            logfmt::line(
                "STORE_UNAVAILABLE",
                &[
                    ("worker", who.to_owned()),
                    ("kind", e.kind().to_owned()),
                    ("reason", e.to_string()),
                ],
            );
        }
        self.down = true;
    }

    /// Records a success (logged after a failure).
    pub fn ok(&mut self, who: &str) {
        if self.down {
            logfmt::line("STORE_RECOVERED", &[("worker", who.to_owned())]);
        }
        self.down = false;
    }
}

/// Waits for the Redis behind `store` to answer (its outage logged once, as `who`), and refuses
/// a deployment it cannot serve: on a cluster, a key prefix without a hash tag. Every process
/// on Redis calls it at start; it returns whether the Redis is a cluster.
pub fn await_redis(store: &RedisStore, who: &str) -> anyhow::Result<bool> {
    let mut health = Health::default();
    let cluster = store
        .await_server(|e| health.failed(who, e))
        .map_err(anyhow::Error::msg)?;
    health.ok(who);
    Ok(cluster)
}

/// The next batch: entries reclaimed from idle consumers and taken over from dead ones, then
/// new ones (waiting up to `block_ms`).
pub fn next_batch(
    store: &dyn StateStore,
    c: &mut (impl GroupStream + ?Sized),
    idle_ms: u64,
    now: Timestamp,
    block_ms: usize,
) -> Result<Vec<Entry>, StoreError> {
    let idle = c.reclaim_if_due(idle_ms, MAX_DELIVERIES, BATCH)?;
    let mut batch = dead_letter_poisoned(store, c, idle, now)?;
    let dead = c.take_over_if_due(MAX_DELIVERIES, BATCH)?;
    batch.extend(dead_letter_poisoned(store, c, dead, now)?);
    batch.extend(c.read(BATCH, block_ms)?);
    Ok(batch)
}

/// Steps a worker forever, pausing `every` after a step (a step that blocks on its stream
/// needs none), logging each change of the store's health once and backing off while it is
/// down.
pub fn run_forever<T>(
    name: &str,
    every: std::time::Duration,
    mut step: impl FnMut() -> Result<T, StoreError>,
) {
    let mut health = Health::default();
    loop {
        match step() {
            Ok(_) => {
                health.ok(name);
                std::thread::sleep(every);
            }
            Err(e) => {
                health.failed(name, &e);
                std::thread::sleep(std::time::Duration::from_millis(200).max(every));
            }
        }
    }
}

/// Dead-letters (and acknowledges) the poisoned and trimmed entries of `r`; returns the
/// claimed ones, to handle again.
fn dead_letter_poisoned(
    store: &dyn StateStore,
    c: &mut (impl GroupStream + ?Sized),
    r: consumer::Reclaimed,
    now: Timestamp,
) -> Result<Vec<Entry>, StoreError> {
    for (entry, times) in &r.poisoned {
        // A plan some consumer decided before dying unacknowledged is done, not poisoned.
        let plan_id = entry
            .fields
            .iter()
            .find(|(k, _)| k == "plan_id")
            .and_then(|(_, v)| PlanId::parse(v).ok());
        let decided = match &plan_id {
            Some(id) if c.group() == PLAN_GROUP => store.is_decided(id)?,
            _ => false,
        };
        if !decided {
            store.dead_letter(
                &entry.fields,
                format!("delivered {times} times without being handled"),
                now,
            )?;
            logfmt::line(
                "DEAD_LETTERED",
                &[
                    ("stream", c.stream().to_owned()),
                    ("id", entry.id.clone()),
                    (
                        "plan",
                        plan_id.as_ref().map_or("", |p| p.as_str()).to_owned(),
                    ),
                    ("deliveries", times.to_string()),
                ],
            );
        }
        c.ack(std::slice::from_ref(&entry.id))?;
    }
    for id in &r.trimmed {
        logfmt::line(
            "ALERT_TRIMMED_UNACKED",
            &[("stream", c.stream().to_owned()), ("id", id.clone())],
        );
        store.dead_letter(
            &[("stream_id".to_owned(), id.clone())],
            "trimmed from the stream before it was acknowledged".to_owned(),
            now,
        )?;
        c.ack(std::slice::from_ref(id))?;
    }
    Ok(r.claimed)
}

/// A consumer named `name` in `group` of `stream` (the group is created if missing), with its
/// own store connection: what every stream worker of the service starts from.
pub fn group_member(
    url: &str,
    cfg: &governor_core::Config,
    stream: &str,
    group: &str,
    name: &str,
) -> Result<(GroupConsumer, Arc<RedisStore>), StoreError> {
    let mut consumer = GroupConsumer::new(url, stream, group, name)?;
    consumer.ensure_group()?;
    let store = RedisStore::open(url, &cfg.key_prefix, cfg.block_ttl_secs, name)?
        .with_permit_replicas(cfg.permit_replicas);
    Ok((consumer, Arc::new(store)))
}

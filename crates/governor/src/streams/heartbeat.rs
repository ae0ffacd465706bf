//! Fast failover. Every governor process keeps one heartbeat key per consumer it runs
//! (`governor:heartbeat:{consumer}`, a short TTL, refreshed by a thread of its own, not by the
//! workers: a worker busy with a slow batch keeps its heartbeat). A consumer whose heartbeat has
//! expired is dead — its process was killed or lost its connection — and any live consumer of
//! the group takes its pending entries over within seconds instead of waiting for the 30 s idle
//! rule. A live but slow consumer keeps its heartbeat, so only the idle rule applies to it.

use crate::store::redis::link::RedisTarget;
use crate::store::StoreError;
use std::time::Duration;

/// How long a heartbeat lives without being refreshed.
pub const HEARTBEAT_TTL_MS: u64 = 3_000;

/// How often a process refreshes its heartbeats (three chances before one expires).
pub const HEARTBEAT_EVERY_MS: u64 = HEARTBEAT_TTL_MS / 3;

/// A dead consumer's entry is taken over only once it has been idle this long: long enough
/// that a second live consumer racing for the same entry finds it freshly claimed (claiming
/// resets the idle time) and leaves it.
pub const TAKEOVER_MIN_IDLE_MS: u64 = 1_000;

/// The heartbeat key of `consumer` under the key prefix.
pub fn key(prefix: &str, consumer: &str) -> String {
    format!("{prefix}governor:heartbeat:{consumer}")
}

/// Refreshes the heartbeats of `consumers` (one round trip), each living `ttl_ms`.
pub fn beat(
    conn: &mut dyn redis::ConnectionLike,
    prefix: &str,
    consumers: &[String],
    ttl_ms: u64,
) -> Result<(), StoreError> {
    let mut pipe = redis::pipe();
    for c in consumers {
        pipe.cmd("SET")
            .arg(key(prefix, c))
            .arg(std::process::id())
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
    }
    pipe.query::<()>(conn).map_err(StoreError::from)
}

/// Keeps the heartbeats of `consumers` alive until the process ends: the body of the process's
/// heartbeat thread. A failure (Redis away) is logged once per outage and retried; the
/// heartbeats then expire, and the other governors take over, as they should for a process that
/// cannot reach the store.
pub fn run(target: &RedisTarget, prefix: &str, consumers: &[String], ttl_ms: u64) {
    let every = Duration::from_millis((ttl_ms / 3).max(1));
    let mut conn = None;
    let mut health = super::Health::default();
    loop {
        if conn.is_none() {
            conn = target.connect(prefix, every).ok();
        }
        let result = match conn.as_mut() {
            Some(c) => beat(c, prefix, consumers, ttl_ms),
            None => Err(StoreError::Unavailable("cannot connect".to_owned())),
        };
        match result {
            Ok(()) => health.ok("heartbeat"),
            Err(e) => {
                conn = None;
                health.failed("heartbeat", &e);
            }
        }
        std::thread::sleep(every);
    }
}

//! Fast failover on a real redis-server: a consumer whose heartbeat expired has its pending
//! entries taken over in seconds, once; a live consumer, however slow, keeps them; an entry
//! delivered too often is handed over as poisoned, not claimed again.

mod support;

use quantum_governor::store::redis::link::RedisTarget;
use quantum_governor::streams::consumer::GroupConsumer;
use quantum_governor::streams::heartbeat;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

const PREFIX: &str = "fo:{acct1}:";
const STREAM: &str = "fo:{acct1}:stream:apply.plan";
const GROUP: &str = "governor";

/// A group with `n` entries, all delivered to (and left pending with) `holder`.
fn pending_with(server: &RedisServer, holder: &str, n: usize) -> (GroupConsumer, Vec<String>) {
    let mut c = GroupConsumer::new(&server.url(), STREAM, GROUP, holder).unwrap();
    c.ensure_group().unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let ids: Vec<String> = (0..n)
        .map(|i| {
            redis::cmd("XADD")
                .arg(STREAM)
                .arg("*")
                .arg("plan_id")
                .arg(format!("p{i}"))
                .query(&mut conn)
                .unwrap()
        })
        .collect();
    let read = c.read(64, 0).unwrap();
    assert_eq!(read.len(), n);
    (c, ids)
}

fn beat_once(server: &RedisServer, consumer: &str, ttl_ms: u64) {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    heartbeat::beat(&mut conn, PREFIX, &[consumer.to_owned()], ttl_ms).unwrap();
}

fn owner_counts(server: &RedisServer) -> Vec<(String, String)> {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(STREAM)
        .arg(GROUP)
        .query(&mut conn)
        .unwrap();
    let redis::Value::Array(parts) = summary else {
        panic!("{summary:?}")
    };
    match parts.get(3) {
        Some(v @ redis::Value::Array(_)) => redis::from_redis_value(v).unwrap(),
        _ => Vec::new(),
    }
}

#[test]
fn a_dead_consumers_entries_are_taken_over_once_its_heartbeat_expires() {
    let server = RedisServer::start();
    let (_dead, ids) = pending_with(&server, "gov-a-w0", 10);
    beat_once(&server, "gov-a-w0", 400);
    let beat_at = Instant::now();
    let mut live = GroupConsumer::new(&server.url(), STREAM, GROUP, "gov-b-w0").unwrap();
    let mut third = GroupConsumer::new(&server.url(), STREAM, GROUP, "gov-c-w0").unwrap();
    // While the heartbeat lives, nothing is taken (the entries are idle long enough already
    // after the first 100 ms).
    std::thread::sleep(Duration::from_millis(100));
    let early = live.take_over_dead(PREFIX, 50, 5, 64).unwrap();
    if beat_at.elapsed() < Duration::from_millis(400) {
        assert!(
            early.claimed.is_empty(),
            "taken from a live consumer: {early:?}"
        );
    }
    // Once it expires, they are taken over: every one, by one consumer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut claimed = Vec::new();
    while claimed.len() < ids.len() {
        assert!(Instant::now() < deadline, "not taken over: {claimed:?}");
        let r = live.take_over_dead(PREFIX, 50, 5, 64).unwrap();
        assert!(r.poisoned.is_empty() && r.trimmed.is_empty(), "{r:?}");
        claimed.extend(r.claimed.into_iter().map(|e| e.id));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        beat_at.elapsed() >= Duration::from_millis(400),
        "taken before the heartbeat expired"
    );
    claimed.sort();
    assert_eq!(claimed, ids, "each entry taken over exactly once");
    // The new holder keeps a heartbeat: a third consumer takes nothing from it.
    beat_once(&server, "gov-b-w0", 10_000);
    std::thread::sleep(Duration::from_millis(100));
    assert!(third
        .take_over_dead(PREFIX, 50, 5, 64)
        .unwrap()
        .claimed
        .is_empty());
    assert_eq!(
        owner_counts(&server),
        [("gov-b-w0".to_owned(), "10".to_owned())]
    );
}

#[test]
fn a_live_slow_consumer_keeps_its_entries() {
    let server = RedisServer::start();
    let (_slow, ids) = pending_with(&server, "gov-a-w0", 5);
    // Its process keeps its heartbeat (300 ms TTL, refreshed every 100 ms), as `serve` does
    // from a thread of its own while the worker is busy.
    let target = RedisTarget::parse(&server.url()).unwrap();
    std::thread::spawn(move || heartbeat::run(&target, PREFIX, &["gov-a-w0".to_owned()], 300));
    let mut other = GroupConsumer::new(&server.url(), STREAM, GROUP, "gov-b-w0").unwrap();
    let watch = Instant::now();
    // Five TTLs long, the entries idle far past the 50 ms asked: never taken.
    while watch.elapsed() < Duration::from_millis(1_500) {
        let r = other.take_over_dead(PREFIX, 50, 5, 64).unwrap();
        assert!(r.claimed.is_empty(), "taken from a live consumer: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        owner_counts(&server),
        [("gov-a-w0".to_owned(), ids.len().to_string())]
    );
}

#[test]
fn an_entry_delivered_too_often_is_handed_over_as_poisoned_not_claimed() {
    let server = RedisServer::start();
    let (_dead, ids) = pending_with(&server, "gov-a-w0", 3);
    let mut live = GroupConsumer::new(&server.url(), STREAM, GROUP, "gov-b-w0").unwrap();
    std::thread::sleep(Duration::from_millis(60));
    // Delivered once each, and one delivery is the limit here.
    let r = live.take_over_dead(PREFIX, 50, 1, 64).unwrap();
    assert!(r.claimed.is_empty(), "{r:?}");
    let mut poisoned: Vec<String> = r
        .poisoned
        .iter()
        .map(|(e, n)| {
            assert_eq!(*n, 1);
            e.id.clone()
        })
        .collect();
    poisoned.sort();
    assert_eq!(poisoned, ids);
    // Still the dead consumer's until the caller dead-letters and acknowledges them.
    assert_eq!(
        owner_counts(&server),
        [("gov-a-w0".to_owned(), "3".to_owned())]
    );
}

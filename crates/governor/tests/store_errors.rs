//! A store error says what kind of failure it is, from a real redis-server's own answers: the
//! callers branch on the kind (a busy group is fine, a flushed script is reloaded, a dead
//! server is waited for), never on the text.

mod support;

use quantum_governor::store::redis::RedisStore;
use quantum_governor::store::{StateStore, StoreError};
use quantum_governor::streams::consumer::GroupConsumer;
use support::redis_server::RedisServer;

fn store(url: &str) -> RedisStore {
    RedisStore::open(url, "quantum:", 3600, "g1").unwrap()
}

#[test]
fn each_failure_of_a_real_server_has_its_kind() {
    let server = RedisServer::start();
    let s = store(&server.url());

    s.with_conn(|c| redis::cmd("SET").arg("k").arg("text").query::<()>(c))
        .unwrap();
    let wrong = s
        .with_conn(|c| {
            redis::cmd("HGET")
                .arg("k")
                .arg("f")
                .query::<Option<String>>(c)
        })
        .unwrap_err();
    assert!(
        matches!(&wrong, StoreError::Refused { code, .. } if code == "WRONGTYPE"),
        "{wrong:?}"
    );

    let missing = s
        .with_conn(|c| {
            redis::cmd("EVALSHA")
                .arg("0000000000000000000000000000000000000000")
                .arg(0)
                .query::<()>(c)
        })
        .unwrap_err();
    assert!(matches!(missing, StoreError::NoScript(_)), "{missing:?}");
    assert_eq!(missing.code(), Some("NOSCRIPT"));

    // A group that exists already is not an error for the caller that ensures it.
    let mut consumer = GroupConsumer::new(&server.url(), "quantum:stream:x", "g", "c1").unwrap();
    consumer.ensure_group().unwrap();
    consumer.ensure_group().unwrap();

    let url = server.url();
    drop(server);
    let dead = store(&url).ping().unwrap_err();
    assert!(matches!(dead, StoreError::Unavailable(_)), "{dead:?}");
    assert_eq!(dead.kind(), "unavailable");
}

#[test]
fn an_unreadable_answer_is_corrupt_not_unavailable() {
    let server = RedisServer::start();
    let s = store(&server.url());
    s.with_conn(|c| {
        redis::cmd("SET")
            .arg("n")
            .arg("not a number")
            .query::<()>(c)
    })
    .unwrap();
    let bad = s
        .with_conn(|c| redis::cmd("GET").arg("n").query::<i64>(c))
        .unwrap_err();
    assert!(matches!(bad, StoreError::Corrupt(_)), "{bad:?}");
}

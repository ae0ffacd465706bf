//! A store error says what kind of failure it is, from a real redis-server's own answers: the
//! callers branch on the kind (a busy group is fine, a flushed script is reloaded, a dead
//! server is waited for), never on the text. A commit request the script cannot carry out whole
//! is refused before its first write.

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

/// The commit script checks every operation before its first write: one that names a large text
/// (a record, a trace) the call did not carry is refused, and nothing of the batch is written —
/// not the commit before it, not a fence.
#[test]
fn a_commit_naming_a_missing_text_writes_nothing() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let script = redis::Script::new(include_str!("../src/store/redis/lua/commit.lua"));
    let record = |plan: &str, json_arg: u32, trace_arg: u32| {
        serde_json::json!({"guards": [{"guard": "undecided", "plan_id": plan}],
            "ops": [{"op": "record", "plan_id": plan, "json_arg": json_arg, "ttl_secs": 60,
                     "fields": ["plan_id", plan, "trace", ""], "trace_field": 4,
                     "trace_arg": trace_arg}]})
    };
    let req = serde_json::json!({"now": 1, "commits": [record("p1", 3, 4), record("p2", 5, 6)]});
    let commit = |texts: &[&str]| {
        s.with_conn(|c| {
            let mut call = script.arg("quantum:");
            call.arg(req.to_string());
            for text in texts {
                call.arg(*text);
            }
            call.invoke::<Vec<i64>>(c)
        })
    };
    let (p1, p2) = ("{\"plan_id\":\"p1\"}", "{\"plan_id\":\"p2\"}");
    // Texts 3 to 5 are there; text 6, the second commit's trace, is not.
    let refused = commit(&[p1, "[]", p2]).unwrap_err();
    assert!(
        refused.to_string().contains("missing argument 6"),
        "{refused}"
    );
    let written: Vec<String> = s
        .with_conn(|c| redis::cmd("KEYS").arg("*").query(c))
        .unwrap();
    assert!(written.is_empty(), "{written:?}");

    // With every text there, the same batch commits both decisions.
    let fences = commit(&[p1, "[]", p2, "[]"]).unwrap();
    assert_eq!(fences, vec![2, 1, 2, 0]);
    let stored: Option<String> = s
        .with_conn(|c| {
            redis::cmd("GET")
                .arg("quantum:governor:decision:p2")
                .query(c)
        })
        .unwrap();
    assert_eq!(stored.as_deref(), Some("{\"plan_id\":\"p2\"}"));
}

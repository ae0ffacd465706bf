//! A store error says what kind of failure it is, from a real redis-server's own answers: the
//! callers branch on the kind (a busy group is fine, a flushed script is reloaded, a dead
//! server is waited for), never on the text. A commit request the script cannot carry out whole
//! is refused before its first write.

mod support;

use quantum_governor::store::redis::RedisStore;
use quantum_governor::store::{StateStore, StoreError};
use quantum_governor::streams::consumer::GroupConsumer;
use support::redis_server::RedisServer;

/// Stores `json` as rotation `id`, as another writer could have.
fn put_rotation(s: &RedisStore, id: &str, json: &str) {
    s.with_conn(|c| {
        redis::cmd("HSET")
            .arg("quantum:governor:rotations")
            .arg(id)
            .arg(json)
            .query::<()>(c)
    })
    .unwrap()
}

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

/// The commit script checks every operation before its first write: one that names a text (a
/// record, a stream entry's field) the call did not carry, or a run of fields that is not
/// name-value pairs, is refused, and nothing of the batch is written — not the commit before
/// it, not a fence.
#[test]
fn a_commit_naming_a_missing_text_writes_nothing() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let script = redis::Script::new(include_str!("../src/store/redis/lua/commit.lua"));
    // A record names its head and tail, then a run of four arguments: its stream entry's two
    // fields, the second of which is the trace the record is stored with.
    let record = |plan: &str, head_arg: u32| {
        serde_json::json!({"guards": [{"guard": "undecided", "plan_id": plan}],
            "ops": [{"op": "record", "plan_id": plan, "head_arg": head_arg,
                     "tail_arg": head_arg + 1, "trace_arg": head_arg + 5, "ttl_secs": 60,
                     "fields_arg": head_arg + 2, "fields_len": 4}]})
    };
    let req = serde_json::json!({"now": 1, "commits": [record("p1", 3), record("p2", 9)]});
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
    let texts = |plan: &'static str| {
        [
            if plan == "p1" {
                "{\"plan_id\":\"p1\",\"trace\":"
            } else {
                "{\"plan_id\":\"p2\",\"trace\":"
            },
            "}",
            "plan_id",
            plan,
            "trace",
            "[]",
        ]
    };
    let all: Vec<&str> = texts("p1").into_iter().chain(texts("p2")).collect();
    // Texts 3 to 13 are there; text 14, the second commit's trace, is not.
    let refused = commit(&all[..11]).unwrap_err();
    assert!(
        refused.to_string().contains("missing argument 14"),
        "{refused}"
    );
    let written: Vec<String> = s
        .with_conn(|c| redis::cmd("KEYS").arg("*").query(c))
        .unwrap();
    assert!(written.is_empty(), "{written:?}");

    // With every text there, the same batch commits both decisions.
    let fences = commit(&all).unwrap();
    assert_eq!(fences, vec![2, 1, 2, 0]);
    let stored: Option<String> = s
        .with_conn(|c| {
            redis::cmd("GET")
                .arg("quantum:governor:decision:p2")
                .query(c)
        })
        .unwrap();
    assert_eq!(stored.as_deref(), Some("{\"plan_id\":\"p2\",\"trace\":[]}"));
    // Each stream entry is the run of arguments its op named, as they arrived.
    let entries: redis::streams::StreamRangeReply = s
        .with_conn(|c| {
            redis::cmd("XRANGE")
                .arg("quantum:stream:governor.decisions")
                .arg("-")
                .arg("+")
                .query(c)
        })
        .unwrap();
    let ids: Vec<String> = entries
        .ids
        .iter()
        .map(|e| e.get::<String>("plan_id").unwrap())
        .collect();
    assert_eq!(ids, ["p1", "p2"]);
}

/// A run of fields of odd length (a name without its value) is refused before any write.
#[test]
fn a_commit_with_an_odd_run_of_fields_writes_nothing() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let script = redis::Script::new(include_str!("../src/store/redis/lua/commit.lua"));
    let req = serde_json::json!({"now": 1, "commits": [{"guards": [],
        "ops": [{"op": "emit", "fields_arg": 3, "fields_len": 3}]}]});
    let refused = s
        .with_conn(|c| {
            script
                .arg("quantum:")
                .arg(req.to_string())
                .arg("event")
                .arg("PLAN_BLOCKED")
                .arg("plan_id")
                .invoke::<Vec<i64>>(c)
        })
        .unwrap_err();
    assert!(refused.to_string().contains("bad fields 3+3"), "{refused}");
    let written: Vec<String> = s
        .with_conn(|c| redis::cmd("KEYS").arg("*").query(c))
        .unwrap();
    assert!(written.is_empty(), "{written:?}");
}

/// The rotation guard reads the record's own verdict, not a gate's fact of the same name in its
/// trace (the idempotency gate records a prior decision's verdict), now that the trace is stored
/// in the record as the array itself.
#[test]
fn the_rotation_guard_reads_the_records_own_verdict() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let script = redis::Script::new(include_str!("../src/store/redis/lua/commit.lua"));
    let set = |key: &str, value: &str| {
        s.with_conn(|c| redis::cmd("SET").arg(key).arg(value).query::<()>(c))
            .unwrap()
    };
    put_rotation(&s, "r1", r#"{"phase":"slot_held"}"#);
    let req = serde_json::json!({"now": 1, "commits": [{
        "guards": [{"guard": "rotation_slot_held", "plan_id": "r1"}], "ops": []}]});
    let run = || {
        s.with_conn(|c| {
            script
                .arg("quantum:")
                .arg(req.to_string())
                .invoke::<Vec<i64>>(c)
        })
        .unwrap()
    };
    let trace = r#"[{"gate":"idempotency","inputs":{"verdict":"PENDING"}}]"#;
    set(
        "quantum:governor:decision:r1",
        &format!(r#"{{"plan_id":"r1","verdict":"BLOCK","trace":{trace}}}"#),
    );
    assert_eq!(run(), vec![0, 1], "a BLOCK record holds no rotation slot");
    set(
        "quantum:governor:decision:r1",
        &format!(r#"{{"plan_id":"r1","verdict":"PENDING","trace":{trace}}}"#),
    );
    // Fence 1 went to the batch whose guard failed: a batch takes its fences up front, and
    // those of commits not applied are skipped.
    assert_eq!(run(), vec![1, 2, 0], "a PENDING record does");
}

/// A stored rotation's phase is its own last key: a pending plan whose own fields carry a
/// `phase` (a producer's extra field) never passes for the rotation's.
#[test]
fn a_rotation_guard_reads_the_rotations_own_phase() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let script = redis::Script::new(include_str!("../src/store/redis/lua/commit.lua"));
    let rotation = |id: &str, extra: &str, own: &str| {
        let json = format!(
            r#"{{"pending":{{"extra":{{"phase":"{extra}"}}}},"close_symbol":"AUSDT","phase":"{own}"}}"#
        );
        put_rotation(&s, id, &json);
        s.with_conn(|c| {
            redis::cmd("SET")
                .arg(format!("quantum:governor:decision:{id}"))
                .arg(format!(r#"{{"plan_id":"{id}","verdict":"PENDING"}}"#))
                .query::<()>(c)
        })
        .unwrap();
    };
    let applied = |guard: &str, id: &str| {
        let req = serde_json::json!({"now": 1, "commits": [{
            "guards": [{"guard": guard, "plan_id": id}], "ops": []}]});
        s.with_conn(|c| {
            script
                .arg("quantum:")
                .arg(req.to_string())
                .invoke::<Vec<i64>>(c)
        })
        .unwrap()[0]
    };
    rotation("r1", "slot_held", "awaiting_close");
    assert_eq!(applied("rotation_slot_held", "r1"), 0);
    assert_eq!(applied("rotation_awaiting_close", "r1"), 1);
    rotation("r2", "awaiting_close", "close_permitted");
    assert_eq!(applied("rotation_awaiting_close", "r2"), 0);
    assert_eq!(applied("rotation_awaiting_close", "missing"), 0);
}

/// A slot promised to a rotation — its symbol being closed by one, or held for one's pending
/// plan — is no one else's: the slot guard fails for it, whatever room the table has, and holds
/// for a symbol no rotation names.
#[test]
fn the_slot_guard_refuses_a_slot_promised_to_a_rotation() {
    let server = RedisServer::start();
    let s = store(&server.url());
    let script = redis::Script::new(include_str!("../src/store/redis/lua/commit.lua"));
    let rotation = |id: &str, json: &str| put_rotation(&s, id, json);
    rotation(
        "r1",
        r#"{"pending":{"symbol":"ZUSDT"},"close_symbol":"AUSDT","phase":"awaiting_close"}"#,
    );
    rotation(
        "r2",
        r#"{"pending":{"symbol":"YUSDT"},"close_symbol":"BUSDT","phase":"slot_held"}"#,
    );
    let guard_holds = |symbol: &str| {
        let req = serde_json::json!({"now": 1, "commits": [{"guards": [{"guard": "slot_available",
            "symbol": symbol, "side": "LONG", "desired": 10, "unledgered": 0}], "ops": []}]});
        let answer: Vec<i64> = s
            .with_conn(|c| script.arg("quantum:").arg(req.to_string()).invoke(c))
            .unwrap();
        answer[0] == 1
    };
    assert!(!guard_holds("AUSDT"), "being closed by a rotation");
    assert!(!guard_holds("YUSDT"), "held for a rotation's plan");
    assert!(
        guard_holds("ZUSDT"),
        "not held for its plan before the close fills"
    );
    assert!(guard_holds("CUSDT"), "named by no rotation");
}

//! `plans export` against a real redis-server, the plans written by a Python redis-py client in
//! the contract's format: every entry comes out as it went in (id, time, fields in their order,
//! a value that is not UTF-8 in hex), in order, across more than one page, and `--from`/`--to`
//! select by entry time.

mod support;

use std::process::Command;
use support::redis_server::RedisServer;

const WRITE: &str = r#"
import json, sys, redis
r = redis.Redis.from_url(sys.argv[1])
key = "quantum:stream:apply.plan"
ids = []
ids.append(r.xadd(key, {"plan_id": "open-1", "symbol": "ETHUSDT", "action": "OPEN_LONG",
                        "decision": "EXECUTE", "qty": "0.05", "score": "72"}, id="1700000000000-0"))
ids.append(r.xadd(key, {"plan_id": "close-1", "symbol": "ETHUSDT", "decision": "EXECUTE",
                        "harvest_action": "FULL_CLOSE_PROPOSED"}, id="1700000060000-0"))
ids.append(r.xadd(key, {"plan_id": "bad-1", "symbol": "ETHUSDT", "action": "OPEN_LONG",
                        "decision": "EXECUTE", "qty": "NaN"}, id="1700000120000-0"))
ids.append(r.xadd(key, {"plan_id": "bytes-1", "note": b"\xff\xfe"}, id="1700000180000-0"))
p = r.pipeline()
for i in range(1200):
    p.xadd(key, {"plan_id": f"filler-{i}"}, id=f"1700000240000-{i}")
p.execute()
print(json.dumps([i.decode() for i in ids]))
"#;

fn export(url: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = support::governor_command()
        .args(["plans", "export", "--redis", url])
        .args(args)
        .output()
        .unwrap();
    support::succeeded(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn recorded_plans_are_exported_untouched_in_order_and_by_time() {
    let server = RedisServer::start();
    let py = Command::new("python3")
        .args(["-c", WRITE, &server.url()])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let ids: Vec<String> = serde_json::from_slice(&py.stdout).unwrap();

    let all = export(&server.url(), &[]);
    assert_eq!(all.len(), 4 + 1200, "every entry, across two pages");
    assert_eq!(all[0]["id"], ids[0]);
    assert_eq!(all[0]["time"], 1_700_000_000_000i64);
    assert_eq!(
        all[0]["fields"],
        serde_json::json!([
            ["plan_id", "open-1"],
            ["symbol", "ETHUSDT"],
            ["action", "OPEN_LONG"],
            ["decision", "EXECUTE"],
            ["qty", "0.05"],
            ["score", "72"]
        ])
    );
    assert_eq!(
        all[1]["fields"],
        serde_json::json!([
            ["plan_id", "close-1"],
            ["symbol", "ETHUSDT"],
            ["decision", "EXECUTE"],
            ["harvest_action", "FULL_CLOSE_PROPOSED"]
        ])
    );
    assert_eq!(
        all[2]["fields"][4],
        serde_json::json!(["qty", "NaN"]),
        "kept as it came"
    );
    assert_eq!(
        all[3]["fields"][1],
        serde_json::json!(["note", {"hex": "fffe"}])
    );
    let last = &all[all.len() - 1];
    assert_eq!(last["id"], "1700000240000-1199");
    let in_order = all
        .windows(2)
        .all(|w| w[0]["time"].as_i64() <= w[1]["time"].as_i64());
    assert!(in_order);

    let one = export(
        &server.url(),
        &["--from", "1700000060000", "--to", "1700000120000"],
    );
    let plan_ids: Vec<&str> = one
        .iter()
        .map(|e| e["fields"][0][1].as_str().unwrap())
        .collect();
    assert_eq!(plan_ids, ["close-1", "bad-1"]);
}

#[test]
fn an_unreachable_redis_is_an_error_naming_it_and_writes_nothing() {
    let port = support::embedded_server::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let out = support::governor_command()
        .args(["plans", "export", "--redis", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no partial export on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("connecting to {url}")), "{err}");
}

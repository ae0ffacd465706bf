//! One logfmt line per decision, with the grep token of docs/wire-contract.md and its fields, and never
//! a secret — read from a real `serve` process's output.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use support::embedded_server::{small_open, EmbeddedServer, DATA_SYMBOLS, OPEN_LIMITS};

const SECRET: &str = "qg-admin-SECRET-5e1d9a";

/// logfmt fields of a line (values may be quoted).
fn fields(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line.split_once(' ').map_or("", |(_, r)| r);
    while let Some((k, after)) = rest.split_once('=') {
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find("\" ").map_or(q.len().saturating_sub(1), |i| i);
            (q[..end].to_owned(), q.get(end + 2..).unwrap_or(""))
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), after.get(end + 1..).unwrap_or(""))
        };
        out.insert(k.trim().to_owned(), v);
        rest = next;
    }
    out
}

#[test]
fn each_decision_logs_exactly_one_line_with_its_token_and_no_secret() {
    let mut env = OPEN_LIMITS.to_vec();
    env.push(("GOV_ADMIN_TOKEN", SECRET));
    let server = EmbeddedServer::start(&env);
    let desired = server.get_json("/v1/stats")["desired_slots"]
        .as_u64()
        .unwrap() as usize;
    let mut expected: Vec<(String, &str)> = Vec::new();
    for (i, s) in DATA_SYMBOLS.iter().take(desired).enumerate() {
        let id = format!("log-open-{i}");
        server.post_plan(&small_open(&id, s));
        expected.push((id, "ACTIVE_SLOTS_ALLOW"));
    }
    server.post_plan(&small_open("log-full", DATA_SYMBOLS[desired]));
    expected.push(("log-full".into(), "BLOCKED_SLOTS_FULL"));
    // A reservation is not a position yet (embedded mode has no executor): nothing to close.
    server.post_plan(&json!({"plan_id": "log-none", "symbol": "SOLUSDT",
                             "action": "FULL_CLOSE_PROPOSED", "decision": "EXECUTE"}));
    expected.push(("log-none".into(), "BLOCKED"));
    server.post_plan(&json!({"plan_id": "log-hold", "symbol": "SOLUSDT", "action": "HOLD", "decision": "EXECUTE"}));
    expected.push(("log-hold".into(), "SKIPPED"));
    // The same plan id again: the same decision, and no second line.
    server.post_plan(&small_open("log-open-0", DATA_SYMBOLS[0]));
    let (status, _) = server.post_plan(
        &json!({"plan_id": "log-bad", "symbol": "ETHUSDT", "action": "OPEN_LONG",
                                               "decision": "EXECUTE", "qty": "inf"}),
    );
    assert_eq!(status, 422);
    // Trading-state changes, one refused and one accepted.
    let put = |token: &str| {
        ureq::put(&server.url("/v1/trading-state"))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(json!({"state": "REDUCING", "operator": "carol", "reason": "test"}))
            .map_or_else(
                |e| e.into_response().map_or(0, |r| r.status()),
                |r| r.status(),
            )
    };
    assert_eq!(put("not-the-token"), 403);
    assert_eq!(put(SECRET), 200);
    let out = server.stop();

    assert!(
        !out.contains(SECRET),
        "the admin token reached the output:\n{out}"
    );
    for (id, token) in &expected {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| fields(l).get("plan").is_some_and(|p| p == id))
            .collect();
        assert_eq!(lines.len(), 1, "{id}: {lines:?}\n{out}");
        let line = lines[0];
        assert!(line.starts_with(&format!("{token} ")), "{id}: {line}");
        let f = fields(line);
        assert!(f.contains_key("symbol"), "{line}");
        match *token {
            "ACTIVE_SLOTS_ALLOW" | "BLOCKED_SLOTS_FULL" => {
                assert_eq!(f["score"], "70", "{line}");
                assert!(f["slots"].contains('/'), "{line}");
            }
            "BLOCKED" => assert_eq!(f["reason"], "no_position", "{line}"),
            _ => {}
        }
    }
    let full = out
        .lines()
        .find(|l| l.starts_with("BLOCKED_SLOTS_FULL"))
        .unwrap();
    assert_eq!(fields(full)["slots"], format!("{desired}/{desired}"));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("REJECTED ")).count(),
        1,
        "{out}"
    );
    let changed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("TRADING_STATE_CHANGED"))
        .collect();
    assert_eq!(changed.len(), 1, "only the accepted change: {changed:?}");
    assert_eq!(fields(changed[0])["by"], "operator:carol");
}

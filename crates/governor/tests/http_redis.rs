//! The HTTP surface in Redis mode: a `serve --redis … --http …` process on its own
//! redis-server; decisions made from the plan stream are served, with their traces (also via
//! `explain`), consumer lag in the metrics, and readiness follows the store.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::embedded_server::{free_port, OPEN_LIMITS};
use support::redis_server::RedisServer;

fn bin() -> Command {
    support::governor_command()
}

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => (0, e.to_string()),
    }
}

#[test]
fn the_api_serves_what_the_stream_workers_decided() {
    let redis = RedisServer::start();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = bin()
        .args([
            "serve",
            "--redis",
            &redis.url(),
            "--workers",
            "1",
            "--http",
            &format!("127.0.0.1:{port}"),
        ])
        .envs(OPEN_LIMITS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    support::set_universe(&redis.url(), &["ETHUSDT", "SOLUSDT"]);
    for (id, symbol) in [("r-eth", "ETHUSDT"), ("r-bad", "ETHUSDT")] {
        let mut cmd = redis::cmd("XADD");
        cmd.arg("quantum:stream:apply.plan")
            .arg("*")
            .arg("plan_id")
            .arg(id)
            .arg("symbol")
            .arg(symbol)
            .arg("action")
            .arg("OPEN_LONG")
            .arg("decision")
            .arg("EXECUTE")
            .arg("qty")
            .arg(if id == "r-bad" { "NaN" } else { "0.01" });
        cmd.query::<String>(&mut conn).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(&format!("{base}/v1/decisions/r-eth"));
        if status == 200 {
            let d: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(d["verdict"], "ALLOW", "{d}");
            assert!(d["trace"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["gate"] == "sizing"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no decision served: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get(&format!("{base}/readyz"));
    assert_eq!(status, 200, "{body}");
    let (_, stats) = get(&format!("{base}/v1/stats"));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["reservations"], 1);
    assert_eq!(stats["dead_letters"], 1, "the NaN plan was dead-lettered");
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert!(metrics.contains("governor_consumer_lag 0"), "{metrics}");
    assert!(metrics.contains("governor_consumer_pending 0"), "{metrics}");
    assert!(metrics.contains("governor_dead_letters 1"), "{metrics}");
    assert!(
        metrics
            .contains(r#"governor_decisions_total{decision="ALLOW",reason="",mode="enforce"} 1"#),
        "{metrics}"
    );
    let posted =
        ureq::post(&format!("{base}/v1/plans")).send_json(serde_json::json!({"plan_id": "x"}));
    assert!(matches!(posted, Err(ureq::Error::Status(409, _))));

    let explained = bin()
        .args(["explain", "r-eth", "--redis", &redis.url()])
        .output()
        .unwrap();
    assert!(explained.status.success());
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(
        text.starts_with("plan r-eth  OPEN_LONG ETHUSDT  →  ALLOW"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("slots ") && l.contains("pass")),
        "{text}"
    );
    let missing = bin()
        .args(["explain", "never", "--redis", &redis.url()])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));

    drop(redis);
    let (status, body) = get(&format!("{base}/readyz"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"ready\":false"), "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

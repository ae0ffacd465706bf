//! Least-privilege keys and a sane clock, against the local Binance server: a production start
//! with a key that can withdraw is refused, a testnet start without the testnet pair is
//! refused (never the production pair instead), a plain-http base URL that is not loopback is
//! refused before anything is sent, and opens are refused while the exchange's clock is more
//! than 500 ms from ours.

mod support;

use quantum_governor::store::StateStore;
use std::process::Output;
use support::executor_rig::Rig;
use support::fake_binance::{FakeBinance, KEY, SECRET};
use support::redis_server::RedisServer;

/// `serve --exchange binance` with these settings; it must stop by itself.
fn serve(redis: &RedisServer, env: &[(&str, &str)]) -> Output {
    let mut cmd = support::governor_command();
    cmd.args([
        "serve",
        "--redis",
        &redis.url(),
        "--exchange",
        "binance",
        "--workers",
        "1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `serve` in production mode against the stand-in (futures and spot API), with the
/// production pair.
fn serve_production(redis: &RedisServer, fake: &FakeBinance) -> Output {
    serve(
        redis,
        &[
            ("GOV_MODE", "production"),
            ("GOV_BINANCE_BASE_URL", &fake.url),
            ("GOV_BINANCE_SPOT_BASE_URL", &fake.url),
            ("BINANCE_API_KEY", KEY),
            ("BINANCE_API_SECRET", SECRET),
        ],
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn production_refuses_a_key_that_can_withdraw() {
    let redis = RedisServer::start();
    let fake = FakeBinance::start(None);
    fake.state.lock().unwrap().key_can_withdraw = true;
    let out = serve_production(&redis, &fake);
    assert!(!out.status.success(), "it started");
    let err = stderr(&out);
    assert!(err.contains("can withdraw"), "{err}");
    assert!(!err.contains(KEY) && !err.contains(SECRET), "{err}");
    assert_eq!(fake.hits("GET /sapi/v1/account/apiRestrictions"), 1);
    assert_eq!(fake.hits("POST /fapi/v1/order"), 0);
}

#[test]
fn production_refuses_when_the_keys_restrictions_cannot_be_read() {
    let redis = RedisServer::start();
    let fake = FakeBinance::start(None);
    fake.inject(
        "/sapi/v1/account/apiRestrictions",
        support::fake_binance::Canned {
            status: 503,
            headers: vec![],
            body: "{}".to_owned(),
        },
    );
    let out = serve_production(&redis, &fake);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot prove it cannot withdraw"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn testnet_uses_the_testnet_pair_only() {
    let redis = RedisServer::start();
    let fake = FakeBinance::start(None);
    let out = serve(
        &redis,
        &[
            ("GOV_MODE", "testnet"),
            ("GOV_BINANCE_BASE_URL", &fake.url),
            ("BINANCE_API_KEY", KEY),
            ("BINANCE_API_SECRET", SECRET),
        ],
    );
    assert!(!out.status.success(), "it started on the production pair");
    let err = stderr(&out);
    assert!(
        err.contains("BINANCE_TESTNET_API_KEY") && err.contains("BINANCE_TESTNET_API_SECRET"),
        "{err}"
    );
    assert!(
        fake.state.lock().unwrap().queries.is_empty(),
        "nothing sent"
    );
}

#[test]
fn a_plain_http_base_url_off_this_machine_is_refused_before_anything_is_sent() {
    let redis = RedisServer::start();
    for url in [
        "http://192.0.2.10:8080",
        "http://fapi.binance.com",
        "ftp://127.0.0.1",
    ] {
        let out = serve(
            &redis,
            &[
                ("GOV_BINANCE_BASE_URL", url),
                ("BINANCE_TESTNET_API_KEY", KEY),
                ("BINANCE_TESTNET_API_SECRET", SECRET),
            ],
        );
        assert!(!out.status.success(), "{url} was accepted");
        let err = stderr(&out);
        assert!(
            err.contains("binance.base_url") && err.contains(url),
            "{err}"
        );
    }
    for ok in [
        "https://fapi.binance.com",
        "http://127.0.0.1:9",
        "http://localhost:9",
        "http://[::1]:9",
    ] {
        assert_eq!(
            quantum_governor::exchange::binance::check_base_url(ok),
            Ok(()),
            "{ok}"
        );
    }
}

/// Where the governor's open of `plan_id` ended, with the clock line of its trace.
fn decided_with_skew(skew_ms: i64, plan_id: &str) -> (String, serde_json::Value) {
    let rig = Rig::build(
        |_| {},
        |c| c,
        |fake| fake.state.lock().unwrap().skew_ms = skew_ms,
    );
    rig.open(plan_id, "ETHUSDT", "0.05");
    let id = governor_core::types::PlanId::parse(plan_id).unwrap();
    rig.wait("the decision", |r| {
        r.store().decision(&id).unwrap().is_some()
    });
    let d = rig.store().decision(&id).unwrap().unwrap();
    let trace: serde_json::Value = serde_json::from_str(&d.trace.json()).unwrap();
    let line = trace
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["gate"] == "exchange_clock")
        .cloned()
        .unwrap_or_else(|| panic!("no clock line in {trace}"));
    let reason = d.reason.map_or("allow".to_owned(), |r| r.code().to_owned());
    (reason, line)
}

#[test]
fn a_600_ms_clock_offset_refuses_opens_and_400_ms_does_not() {
    let (reason, line) = decided_with_skew(600, "clock-600");
    assert_eq!(reason, "exchange_clock_offset", "{line}");
    let offset = line["inputs"]["offset_ms"].as_i64().unwrap();
    assert!((550..=650).contains(&offset), "{line}");
    let (reason, line) = decided_with_skew(400, "clock-400");
    assert_eq!(reason, "allow", "{line}");
    let offset = line["inputs"]["offset_ms"].as_i64().unwrap();
    assert!((350..=450).contains(&offset), "{line}");
}

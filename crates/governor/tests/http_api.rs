//! Every route of the HTTP API through `oneshot` (no server): answers, refusals, the admin
//! token, and a stream of bad requests that must all get clear 4xx answers, never a 500.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use governor_core::market::BAR_MS;
use governor_core::time::Timestamp;
use governor_core::types::{Side, TradingState};
use governor_core::Config;
use http_body_util::BodyExt;
use quantum_governor::inputs::InputsSource;
use quantum_governor::server::{router, AppState};
use quantum_governor::MarketInputs;
use serde_json::{json, Value};
use std::sync::Arc;
use support::*;
use tower::ServiceExt;

const TOKEN: &str = "admin-token-7f3a9c";

struct Fixed(MarketInputs);

impl InputsSource for Fixed {
    fn inputs(&self, _now: Timestamp) -> MarketInputs {
        self.0.clone()
    }
}

/// The world's clock: the close of its last bar.
fn clock() -> Timestamp {
    Timestamp(BARS as i64 * BAR_MS)
}

fn app(w: &World, token: Option<&str>, accepts_plans: bool) -> axum::Router {
    app_supervised(w, token, accepts_plans, None)
}

fn app_supervised(
    w: &World,
    token: Option<&str>,
    accepts_plans: bool,
    supervisor: Option<quantum_governor::supervisor::Supervisor>,
) -> axum::Router {
    router(AppState {
        gov: w.gov.clone(),
        inputs: Arc::new(Fixed(w.inputs())),
        clock,
        admin_token: token.map(Into::into),
        accepts_plans,
        redis: None,
        supervisor,
    })
}

fn world() -> World {
    let mut cfg = Config::default();
    cfg.cadence.max_exec_per_5min = 100;
    cfg.cadence.max_exec_per_hour = 100;
    cfg.correlation.max = 1.0;
    World::new(cfg)
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    call(app, Method::GET, uri, &[], "").await
}

async fn post_plan(app: &axum::Router, plan: Value) -> (StatusCode, Value) {
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/plans",
        &[("content-type", "application/json")],
        &plan.to_string(),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn open_plan(w: &World, id: &str, symbol: &str) -> Value {
    json!({"plan_id": id, "symbol": symbol, "action": "OPEN_LONG", "decision": "EXECUTE",
           "qty": (100.0 / w.mark(symbol)).to_string()})
}

#[tokio::test]
async fn health_readiness_dashboard_and_unknown_routes() {
    let w = world();
    let app = app(&w, Some(TOKEN), true);
    assert_eq!(
        get(&app, "/healthz").await,
        (StatusCode::OK, "ok".to_owned())
    );
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true);
    let (status, page) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"slots-value\"") && page.contains("EventSource(\"/v1/feed\")"));
    let (status, body) = get(&app, "/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no such route"));
}

#[tokio::test]
async fn readiness_says_why_when_the_store_is_unreachable() {
    let store = Arc::new(
        quantum_governor::store::redis::RedisStore::open(
            "redis://127.0.0.1:1/",
            "quantum:",
            3600,
            "t",
        )
        .unwrap(),
    );
    let gov = quantum_governor::Governor::new(Arc::new(Config::default()), store);
    let app = router(AppState {
        gov,
        inputs: Arc::new(Fixed(MarketInputs::default())),
        clock,
        admin_token: None,
        accepts_plans: false,
        redis: None,
        supervisor: None,
    });
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(v["reason"].as_str().unwrap().contains("refused"), "{v}");
    let (status, body) = get(&app, "/v1/stats").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, metrics) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("governor_store_up 0"), "{metrics}");
}

#[tokio::test]
async fn plans_are_decided_and_their_traces_served() {
    let w = world();
    let app = app(&w, Some(TOKEN), true);
    let desired = {
        let (_, body) = get(&app, "/v1/stats").await;
        serde_json::from_str::<Value>(&body).unwrap()["desired_slots"]
            .as_u64()
            .unwrap() as usize
    };
    let symbols = [
        "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "LTCUSDT",
    ];
    for (i, s) in symbols.iter().take(desired).enumerate() {
        let (status, d) = post_plan(&app, open_plan(&w, &format!("p{i}"), s)).await;
        assert_eq!(
            (status, d["verdict"].as_str()),
            (StatusCode::OK, Some("ALLOW")),
            "{d}"
        );
    }
    let (status, blocked) = post_plan(&app, open_plan(&w, "full-1", symbols[desired])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(blocked["reason"], "slots_full");
    assert!(blocked["trace"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["gate"] == "slots"));

    let (status, body) = get(&app, "/v1/decisions/full-1").await;
    assert_eq!(status, StatusCode::OK);
    let d: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["reason"], "slots_full");
    assert!(d["trace"].as_array().unwrap().len() > 5, "the full trace");
    assert_eq!(
        get(&app, "/v1/decisions/never-seen").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/v1/decisions/bad%20id").await.0,
        StatusCode::BAD_REQUEST
    );

    let (_, list) = get(&app, "/v1/decisions?reason=slots_full").await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("trace").is_none(), "the list leaves traces out");
    let (_, by_symbol) = get(&app, "/v1/decisions?symbol=ETHUSDT&verdict=ALLOW&limit=5").await;
    assert_eq!(
        serde_json::from_str::<Value>(&by_symbol)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, all) = get(&app, "/v1/decisions").await;
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all.as_array().unwrap().len(), desired + 1);
    assert_eq!(all[0]["plan_id"], "full-1", "newest first");

    let (_, stats) = get(&app, "/v1/stats").await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["occupied_slots"].as_u64().unwrap() as usize, desired);
    assert_eq!(stats["available_slots"], 0);
    assert_eq!(stats["reservations"].as_u64().unwrap() as usize, desired);
    assert!(stats["regime"]["regime"].is_string());

    let (status, metrics) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(&format!("governor_slots_occupied {desired}")),
        "{metrics}"
    );
    assert!(metrics.contains("governor_slots_available 0"));
    assert!(metrics.contains("# TYPE governor_decision_latency_seconds histogram"));
    assert!(metrics.contains(
        r#"governor_decisions_total{decision="BLOCK",reason="slots_full",mode="enforce"}"#
    ));
    assert!(metrics.contains(r#"governor_trading_state{state="ACTIVE"} 1"#));

    // A schema error: 422 with every field named.
    let (status, err) = post_plan(&app, json!({"plan_id": "bad-1", "symbol": "ETHUSDT", "action": "OPEN", "decision": "EXECUTE", "qty": "NaN"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = err["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"qty") && fields.contains(&"side"), "{err}");
    // Redis mode takes plans from the stream.
    let redis_mode = self::app(&w, Some(TOKEN), false);
    assert_eq!(
        post_plan(&redis_mode, open_plan(&w, "x", "ETHUSDT"))
            .await
            .0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn trading_state_changes_need_the_admin_token_and_are_recorded() {
    let w = world();
    let app = app(&w, Some(TOKEN), true);
    let (status, body) = get(&app, "/v1/trading-state").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "ACTIVE"
    );
    let halt = r#"{"state":"HALTED","operator":"alice","reason":"exchange incident"}"#;
    let json_ct = ("content-type", "application/json");
    let put = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let app = app.clone();
        async move {
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            call(&app, Method::PUT, "/v1/trading-state", &hs, body).await
        }
    };
    let (status, body) = put(vec![(json_ct.0, json_ct.1.into())], halt).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = put(
        vec![
            json_ct_owned(),
            ("authorization", "Bearer guess-41b7".into()),
        ],
        halt,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        !body.contains(TOKEN) && !body.contains("guess-41b7"),
        "no token is echoed: {body}"
    );
    assert_eq!(
        w.state().trading_state,
        TradingState::Active,
        "nothing changed"
    );

    let auth = ("authorization", format!("Bearer {TOKEN}"));
    let (status, body) = put(
        vec![json_ct_owned(), auth.clone()],
        r#"{"state":"PAUSED","operator":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("PAUSED"), "{body}");
    let (status, body) = put(vec![json_ct_owned(), auth.clone()], r#"{"state":"HALTED"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("operator"), "{body}");
    let (status, body) = put(vec![json_ct_owned(), auth.clone()], halt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["previous"],
        "ACTIVE"
    );
    assert_eq!(w.state().trading_state, TradingState::Halted);
    let event = w
        .state()
        .events
        .into_iter()
        .find(|e| e.event == "TRADING_STATE_CHANGED")
        .unwrap();
    let field = |k: &str| event.field(k);
    assert_eq!(field("by").as_deref(), Some("operator:alice"));
    assert_eq!(field("to").as_deref(), Some("HALTED"));
    assert_eq!(field("reason").as_deref(), Some("exchange incident"));
    assert_eq!(field("at"), Some(clock().millis().to_string()));
    // The halt takes effect: an open is refused.
    let (_, d) = post_plan(&app, open_plan(&w, "after-halt", "ETHUSDT")).await;
    assert_eq!(d["reason"], "kill_switch");

    // Without a configured token, every change is refused.
    let locked = self::app(&w, None, true);
    let hs = [json_ct, ("authorization", "Bearer anything")];
    assert_eq!(
        call(&locked, Method::PUT, "/v1/trading-state", &hs, halt)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

fn json_ct_owned() -> (&'static str, String) {
    ("content-type", "application/json".to_owned())
}

#[tokio::test]
async fn the_feed_sends_decisions_as_server_sent_events() {
    let w = world();
    w.hold("SOLUSDT", Side::Long, 100.0, Some(70.0));
    let app = app(&w, Some(TOKEN), true);
    post_plan(&app, open_plan(&w, "feed-1", "ETHUSDT")).await;
    let res = app
        .clone()
        .oneshot(Request::get("/v1/feed").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(text.starts_with("event: decision\ndata: "), "{text}");
    assert!(
        text.contains(r#""plan_id":"feed-1""#) && text.contains(r#""verdict":"ALLOW""#),
        "{text}"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_answers_never_a_500() {
    let w = world();
    let app = app(&w, Some(TOKEN), true);
    let bodies = [
        "", "null", "[]", "{", "\"x\"", "{\"plan_id\": {}}", "{\"plan_id\": [1]}", "{\"qty\": 1e999}",
        "{\"plan_id\":\"a\",\"symbol\":\"ETHUSDT\",\"action\":\"OPEN_LONG\",\"decision\":\"EXECUTE\",\"qty\":\"-1\"}",
        "{\"plan_id\":\"a b\"}", "\u{0}\u{1}", "{\"symbol\": \"ETHUSDT\", \"symbol\": \"BTCUSDT\"}",
    ];
    let paths = [
        "/v1/decisions?limit=abc",
        "/v1/decisions?limit=-1",
        "/v1/decisions?limit=99999",
        "/v1/decisions?symbol=eth",
        "/v1/decisions?reason=nope",
        "/v1/decisions?verdict=MAYBE",
        "/v1/decisions?foo=bar",
        "/v1/decisions/%FF%FE",
        "/v1/decisions/..",
        "/v1/stats/extra",
        "/v1/plans/x",
        "/%2e%2e/etc/passwd",
    ];
    let content_types = [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ];
    let mut seen = 0;
    for (i, body) in bodies.iter().enumerate() {
        for ct in content_types {
            let mut headers = vec![];
            if !ct.is_empty() {
                headers.push(("content-type", ct));
            }
            for (method, uri) in [
                (Method::POST, "/v1/plans"),
                (Method::PUT, "/v1/trading-state"),
            ] {
                let mut hs = headers.clone();
                let auth = format!("Bearer {TOKEN}");
                if i % 2 == 0 {
                    hs.push(("authorization", auth.as_str()));
                }
                let (status, text) = call(&app, method.clone(), uri, &hs, body).await;
                assert!(
                    status.is_client_error(),
                    "{method} {uri} {body:?} ({ct}): {status} {text}"
                );
                assert!(text.contains("error"), "{method} {uri} {body:?}: {text}");
                seen += 1;
            }
        }
    }
    for p in paths {
        for method in [Method::GET, Method::DELETE, Method::PATCH, Method::POST] {
            let (status, text) = call(&app, method.clone(), p, &[], "{}").await;
            assert!(status.is_client_error(), "{method} {p}: {status} {text}");
            seen += 1;
        }
    }
    for method in [Method::DELETE, Method::PATCH] {
        for p in ["/v1/plans", "/v1/trading-state", "/v1/stats", "/healthz"] {
            let (status, _) = call(&app, method.clone(), p, &[], "").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {p}");
            seen += 1;
        }
    }
    assert!(seen > 150, "{seen} bad requests");
}

#[tokio::test]
async fn a_duplicated_key_or_a_near_miss_in_the_body_is_refused_naming_it() {
    let w = world();
    let app = app(&w, None, true);
    let qty = (100.0 / w.mark("ETHUSDT")).to_string();
    let head =
        r#"{"plan_id":"dup-1","symbol":"ETHUSDT","decision":"EXECUTE","action":"OPEN_LONG","#;
    let post = |body: String| {
        let app = app.clone();
        async move {
            let (status, text) = call(
                &app,
                Method::POST,
                "/v1/plans",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
            (status, text)
        }
    };
    // The last of two `qty` keys must not win: refused, naming qty.
    let (status, text) = post(format!(r#"{head}"qty":"{qty}","qty":"5"}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(
        text.contains("`qty`") && text.contains("more than once"),
        "{text}"
    );
    // A close, then an open, in one body: refused, never an open.
    let body = format!(
        r#"{{"plan_id":"dup-2","symbol":"ETHUSDT","decision":"EXECUTE","action":"FULL_CLOSE_PROPOSED","action":"OPEN_LONG","qty":"{qty}"}}"#
    );
    let (status, text) = post(body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("`action`"), "{text}");
    // A typo of leverage is an error, not leverage 5.
    let (status, text) = post(format!(r#"{head}"qty":"{qty}","levarage":"20"}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    assert!(text.contains("did you mean `leverage`?"), "{text}");
    // Bytes that are not UTF-8: a clear 400.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/plans")
        .header("content-type", "application/json")
        .body(Body::from(b"{\"plan_id\":\"x\xff\"}".to_vec()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // The same plan without the duplicate is decided: the refusals above were the keys'.
    let (status, text) = post(format!(r#"{head}"qty":"{qty}"}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        w.state().decisions.len(),
        1,
        "only the clean plan was decided"
    );
}

#[tokio::test]
async fn readiness_names_a_supervised_thread_while_it_is_down_and_metrics_count_it() {
    use quantum_governor::supervisor::{RestartPolicy, Supervisor};
    use std::time::{Duration, Instant};
    let w = world();
    let sup = Supervisor::new(
        RestartPolicy {
            first_backoff: Duration::from_secs(30), // stays down for the test
            ..RestartPolicy::default()
        },
        |_| {},
    );
    let app = app_supervised(&w, None, true, Some(sup.clone()));
    assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
    sup.spawn("plan-worker-7", || panic!("a bad exchange answer"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while sup.down().is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("plan-worker-7"), "{body}");
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("governor_thread_deaths_total{thread=\"plan-worker-7\"} 1"),
        "{metrics}"
    );
}

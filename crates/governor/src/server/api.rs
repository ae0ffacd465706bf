//! The handlers of the HTTP API. Every refusal is a JSON `{"error": …}` with a 4xx status that
//! names the field and the value; a store that cannot be reached is a 503 with its reason.

use super::auth::{self, Denied};
use super::stats;
use super::AppState;
use crate::governor::Submission;
use crate::journal::{record_json, record_summary_json};
use crate::store::StoreError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor_core::effects::{Effect, Event};
use governor_core::reason::BlockReason;
use governor_core::types::{PlanId, Symbol, TradingState};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A refusal with its status.
pub struct ApiError {
    status: StatusCode,
    message: String,
    extra: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            extra: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let (Some(extra), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.insert("errors".to_owned(), extra);
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: ready when the state store answers and every supervised thread runs; 503
/// with the reason (the threads that are down by name) otherwise.
pub async fn readyz(State(s): State<AppState>) -> Response {
    let down = s
        .supervisor
        .as_ref()
        .map(|sup| sup.down())
        .unwrap_or_default();
    if !down.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": format!("threads down: {}", down.join(", ")), "threads_down": down})),
        )
            .into_response();
    }
    match blocking(move || s.gov.store().ping()).await {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": e.to_string()})),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(s): State<AppState>) -> Response {
    let text = blocking(move || {
        let now = (s.clock)();
        let mut gauges = Vec::new();
        let up = match stats::read(
            s.gov.store().as_ref(),
            s.gov.config(),
            &s.inputs.inputs(now),
            now,
        ) {
            Ok(st) => {
                gauges.extend(stats::gauges(&st));
                1.0
            }
            Err(_) => 0.0,
        };
        gauges.push(crate::metrics::Gauge::plain(
            "governor_store_up",
            "1 when the state store answers.",
            up,
        ));
        if let Some(redis) = &s.redis {
            if let Ok((lag, pending)) = consumer_lag(redis) {
                // Redis answers no lag when it cannot know it (entries deleted or trimmed
                // past the group's position): the gauge is left out then, never shown as 0.
                if let Some(lag) = lag {
                    gauges.push(crate::metrics::Gauge::plain(
                        "governor_consumer_lag",
                        "Plan stream entries not yet delivered to the governor group.",
                        lag,
                    ));
                }
                if let Some(pending) = pending {
                    gauges.push(crate::metrics::Gauge::plain(
                        "governor_consumer_pending",
                        "Plan stream entries delivered and not yet acknowledged.",
                        pending,
                    ));
                }
            }
        }
        crate::metrics::global().render(&gauges)
    })
    .await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Lag and pending count of the `governor` group (XINFO GROUPS); `None` where Redis gave none.
fn consumer_lag(
    redis: &crate::store::redis::RedisStore,
) -> Result<(Option<f64>, Option<f64>), StoreError> {
    let stream = redis.key("stream:apply.plan");
    let groups: Vec<BTreeMap<String, redis::Value>> =
        redis.with_conn(|c| redis::cmd("XINFO").arg("GROUPS").arg(&stream).query(c))?;
    let group = groups
        .iter()
        .find(|g| {
            g.get("name")
                .and_then(|v| redis::from_redis_value::<String>(v).ok())
                .as_deref()
                == Some(crate::streams::PLAN_GROUP)
        })
        .ok_or_else(|| {
            StoreError::Unavailable("no governor group on the plan stream yet".to_owned())
        })?;
    let num = |k: &str| {
        group
            .get(k)
            .and_then(|v| redis::from_redis_value::<i64>(v).ok())
            .map(|n| n as f64)
    };
    Ok((num("lag"), num("pending")))
}

/// `GET /v1/stats`.
pub async fn stats(State(s): State<AppState>) -> ApiResult {
    let st = blocking(move || {
        let now = (s.clock)();
        stats::read(
            s.gov.store().as_ref(),
            s.gov.config(),
            &s.inputs.inputs(now),
            now,
        )
    })
    .await?;
    Ok(Json(st).into_response())
}

/// `GET /v1/decisions?symbol=&reason=&verdict=&limit=`: recent decisions, newest first.
pub async fn decisions(
    State(s): State<AppState>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let mut limit = 50usize;
    let mut symbol = None;
    let mut reason = None;
    let mut verdict = None;
    for (k, v) in &q {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(format!("limit = {v:?}: an integer from 1 to 1000"))
                    })?
            }
            "symbol" => {
                symbol = Some(
                    Symbol::parse(v).map_err(|e| ApiError::bad(format!("symbol = {v:?}: {e}")))?,
                )
            }
            "reason" => {
                reason = Some(
                    BlockReason::ALL
                        .into_iter()
                        .find(|r| r.code() == v)
                        .ok_or_else(|| {
                            ApiError::bad(format!("reason = {v:?}: not a block reason code"))
                        })?,
                )
            }
            "verdict" => {
                let known = ["ALLOW", "BLOCK", "PENDING", "SKIP", "REJECT"];
                if !known.contains(&v.as_str()) {
                    return Err(ApiError::bad(format!(
                        "verdict = {v:?}: one of {}",
                        known.join(", ")
                    )));
                }
                verdict = Some(v.clone())
            }
            other => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter `{other}`: symbol, reason, verdict, limit"
                )))
            }
        }
    }
    let records = blocking(move || s.gov.store().recent_decisions(1000)).await?;
    let list: Vec<Value> = records
        .iter()
        .filter(|r| symbol.as_ref().is_none_or(|x| r.symbol == *x))
        .filter(|r| reason.is_none_or(|x| r.reason == Some(x) || r.shadow.contains(&x)))
        .filter(|r| verdict.as_deref().is_none_or(|x| r.verdict.as_str() == x))
        .take(limit)
        .map(record_summary_json)
        .collect();
    Ok(Json(list).into_response())
}

/// `GET /v1/decisions/{plan_id}`: the decision with its full trace.
pub async fn decision(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let plan_id =
        PlanId::parse(&id).map_err(|e| ApiError::bad(format!("plan_id = {id:?}: {e}")))?;
    let found = blocking(move || s.gov.store().decision(&plan_id)).await?;
    match found {
        Some(r) => Ok(Json(record_json(&r)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no decision for plan_id {id:?}"),
        )),
    }
}

/// `POST /v1/plans` (embedded mode): a JSON object of plan fields, answered with its decision.
/// The body is read with its duplicate keys kept, so that the plan parser refuses them (a JSON
/// map would keep the last one silently).
pub async fn post_plan(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    if !s.accepts_plans {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this governor runs on Redis: publish plans on stream:apply.plan",
        ));
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !json_body {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "body: expected `Content-Type: application/json`",
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad(format!("body: not valid UTF-8: {e}")))?;
    let fields =
        crate::json_fields::object_fields(text, crate::json_fields::Scalars::TextNumbersBooleans)
            .map_err(|e| ApiError::bad(format!("body: {e}")))?;
    let submission = blocking(move || {
        let started = std::time::Instant::now();
        let now = (s.clock)();
        let out = s.gov.submit(&fields, &s.inputs.inputs(now), now);
        if let Submission::Decided {
            decision,
            fence: Some(_),
        } = &out
        {
            let record = decision.committed_record();
            crate::metrics::global().observe(&record, started.elapsed());
            let score = fields
                .iter()
                .find(|(k, _)| k == "score" || k == "candidate_score")
                .and_then(|(_, v)| v.parse().ok());
            crate::logfmt::decision(&record, &decision.trace, score);
        }
        out
    })
    .await;
    match submission {
        Submission::Decided { decision, .. } => {
            Ok(Json(record_json(&decision.committed_record())).into_response())
        }
        Submission::Rejected(r) => {
            crate::logfmt::line(
                "REJECTED",
                &[("source", "http".to_owned()), ("error", r.to_string())],
            );
            let errors = serde_json::to_value(&r.errors).unwrap_or(Value::Null);
            Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: r.to_string(),
                extra: Some(errors),
            })
        }
        Submission::Contended { attempts } => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("lost the commit race {attempts} times: nothing decided, try again"),
        )),
        Submission::StoreUnavailable(e) => Err(e.into()),
    }
}

/// `GET /v1/trading-state`.
pub async fn get_trading_state(State(s): State<AppState>) -> ApiResult {
    let snap = blocking(move || {
        let now = (s.clock)();
        // The stored state only: the trading state needs no market data from the exchange.
        s.gov.store().state(&[], now).map(|(state, _)| state)
    })
    .await?;
    Ok(Json(json!({
        "state": snap.trading_state.as_str(),
        "halt": snap.book.halt,
    }))
    .into_response())
}

/// The body of `PUT /v1/trading-state`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateChange {
    /// ACTIVE, REDUCING or HALTED.
    state: String,
    /// Who makes the change (recorded with the event).
    operator: String,
    /// Why (recorded with the event).
    #[serde(default)]
    reason: Option<String>,
}

/// `PUT /v1/trading-state` with `Authorization: Bearer <GOV_ADMIN_TOKEN>`.
pub async fn put_trading_state(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    match auth::check(&headers, s.admin_token.as_deref()) {
        Ok(()) => {}
        Err(Denied::Missing) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "trading-state changes need `Authorization: Bearer <admin token>`",
            ))
        }
        Err(Denied::Wrong) => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "wrong admin token"))
        }
        Err(Denied::NotConfigured) => return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "no admin token is configured (GOV_ADMIN_TOKEN): trading-state changes are disabled",
        )),
    }
    let Json(value) = body.map_err(|e| ApiError::bad(format!("body: {}", e.body_text())))?;
    let change: StateChange = serde_json::from_value(value).map_err(|e| {
        ApiError::bad(format!(
            "body: {e}; expected {{\"state\", \"operator\", \"reason\"?}}"
        ))
    })?;
    let to = match change.state.as_str() {
        "ACTIVE" => TradingState::Active,
        "REDUCING" => TradingState::Reducing,
        "HALTED" => TradingState::Halted,
        other => {
            return Err(ApiError::bad(format!(
                "state = {other:?}: ACTIVE, REDUCING or HALTED"
            )))
        }
    };
    let operator = change.operator.trim().to_owned();
    if operator.is_empty() || operator.len() > 64 || operator.chars().any(char::is_control) {
        return Err(ApiError::bad(format!(
            "operator = {:?}: a name of 1 to 64 printable characters",
            change.operator
        )));
    }
    let reason = change.reason.unwrap_or_default();
    let result = blocking(
        move || -> Result<(TradingState, TradingState), StoreError> {
            let now = (s.clock)();
            let (snap, _) = s.gov.store().state(&[], now)?;
            let from = snap.trading_state;
            let who = PlanId::parse("operator").expect("a valid id");
            let account = Symbol::parse("ACCOUNT").expect("a valid symbol");
            let event = Event::new("TRADING_STATE_CHANGED", &who, &account, now)
                .with("from", from.as_str())
                .with("to", to.as_str())
                .with("by", format!("operator:{operator}"))
                .with("reason", reason.clone())
                .with("at", now.millis());
            let effects = [
                Effect::SetTradingState {
                    to,
                    reason: reason.clone(),
                },
                Effect::Emit(event),
            ];
            s.gov.store().apply(&[], &effects, now)?;
            crate::logfmt::line(
                "TRADING_STATE_CHANGED",
                &[
                    ("from", from.as_str().to_owned()),
                    ("to", to.as_str().to_owned()),
                    ("by", format!("operator:{operator}")),
                    ("reason", reason),
                ],
            );
            Ok((from, to))
        },
    )
    .await?;
    Ok(Json(json!({"previous": result.0.as_str(), "state": result.1.as_str()})).into_response())
}

/// Anything else: 404 with the routes that exist.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route: /, /healthz, /readyz, /metrics, /v1/stats, /v1/decisions, /v1/decisions/{plan_id}, /v1/plans, /v1/trading-state, /v1/feed",
    )
}

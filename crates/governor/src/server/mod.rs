//! The HTTP surface on axum, the same in embedded and Redis modes: health,
//! readiness, Prometheus metrics, stats, decisions with their traces, plans (embedded mode),
//! the trading state (PUT with the admin bearer token), a server-sent feed of decisions and the
//! dashboard. Store calls are blocking; handlers run them on tokio's blocking pool.

mod api;
mod auth;
mod feed;
pub mod stats;

use crate::inputs::InputsSource;
use crate::store::redis::RedisStore;
use crate::Governor;
use axum::routing::get;
use axum::Router;
use governor_core::time::Timestamp;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The governor over the state store (embedded or Redis).
    pub gov: Governor,
    /// Market and exchange.
    pub inputs: Arc<dyn InputsSource>,
    /// The clock (`now` of every decision and reading).
    pub clock: fn() -> Timestamp,
    /// `GOV_ADMIN_TOKEN`: trading-state changes need it; without it they are refused.
    pub admin_token: Option<Arc<str>>,
    /// Embedded mode takes plans over HTTP; in Redis mode they come from the plan stream.
    pub accepts_plans: bool,
    /// In Redis mode: the plan stream's consumer group, for lag and pending entries.
    pub redis: Option<Arc<RedisStore>>,
    /// The process's supervised threads: `/readyz` is not ready while one is down.
    pub supervisor: Option<crate::supervisor::Supervisor>,
}

/// The dashboard page: one self-contained file (styles and script inline).
const DASHBOARD: &str = include_str!("dashboard.html");

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { axum::response::Html(DASHBOARD) }))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/v1/stats", get(api::stats))
        .route("/v1/decisions", get(api::decisions))
        .route("/v1/decisions/{plan_id}", get(api::decision))
        .route("/v1/plans", axum::routing::post(api::post_plan))
        .route(
            "/v1/trading-state",
            get(api::get_trading_state).put(api::put_trading_state),
        )
        .route("/v1/feed", get(feed::decisions))
        .fallback(api::not_found)
        .with_state(state)
}

/// Serves `router(state)` on `addr` until the process ends (its own tokio runtime, so the
/// rest of the service stays plain threads).
pub fn serve_http(addr: &str, state: AppState) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--http {addr}: {e}"))?;
        crate::logfmt::line(
            "HTTP_LISTENING",
            &[("addr", listener.local_addr()?.to_string())],
        );
        axum::serve(listener, router(state)).await?;
        Ok(())
    })
}

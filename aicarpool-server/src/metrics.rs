//! `GET /metrics`: the gateway's metrics in Prometheus text.
//!
//! The core records through the `metrics` facade
//! ([`aicarpool_core::gateway::telemetry`]); this module installs the
//! Prometheus recorder once per process and renders it. Account gauges
//! (state, subscription windows) are read from the gateway's router at
//! each scrape rather than kept up to date on every request.
//!
//! The endpoint needs the admin token on the main listener. With
//! `AICARPOOL_METRICS_LISTEN` it moves to that address instead, without a
//! token (keep that address off the public network), and the main
//! listener answers 404 for it.

use std::sync::OnceLock;

use aicarpool_core::gateway::telemetry;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Histogram buckets in seconds: fine enough for the gateway's own
/// sub-millisecond time, wide enough for a long stream.
const BUCKETS: &[f64] = &[
    0.000_05, 0.0001, 0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Routing states an account can be in, each a series of
/// `aicarpool_account_state` (1 for the current one, 0 for the others).
const ACCOUNT_STATES: [&str; 5] = [
    "healthy",
    "cooling",
    "half_open",
    "needs_attention",
    "disabled",
];

/// The process's Prometheus recorder, installed on first use; `None` when
/// another recorder was installed first (an embedder's own).
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            telemetry::describe();
            Some(handle)
        })
        .as_ref()
}

/// `/metrics` on the main listener: behind the admin token, or not there
/// at all when it has its own address.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(guarded))
}

/// `/metrics` alone, for `AICARPOOL_METRICS_LISTEN`.
pub fn own_listener(state: AppState) -> Router {
    Router::new().route("/metrics", get(open)).with_state(state)
}

async fn guarded(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.metrics_listen.is_some() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let admin = state
        .config
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty());
    match (token, admin) {
        (Some(t), Some(a)) if crate::api::caller::ct_eq_digest(t, a) => render(&state).await,
        (None, _) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the metrics need the admin token (or AICARPOOL_METRICS_LISTEN)\n",
        )
            .into_response(),
        _ => (StatusCode::FORBIDDEN, "the metrics need the admin token\n").into_response(),
    }
}

async fn open(State(state): State<AppState>) -> Response {
    render(&state).await
}

async fn render(state: &AppState) -> Response {
    let Some(handle) = recorder() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n",
        )
            .into_response();
    };
    account_gauges(state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Sets each account's state and window gauges from the router.
async fn account_gauges(state: &AppState) {
    let groups = match state.store.groups().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: listing groups failed");
            return;
        }
    };
    let mut seen = std::collections::HashSet::new();
    for group in groups {
        let Ok(accounts) = state.store.accounts_of_group(&group.id).await else {
            continue;
        };
        for account in accounts {
            if !seen.insert(account.id.clone()) {
                continue;
            }
            let health = state.gateway.account_health(&account.id);
            let current = if account.enabled {
                health.state
            } else {
                "disabled"
            };
            for s in ACCOUNT_STATES {
                let on = if s == current { 1.0 } else { 0.0 };
                metrics::gauge!(telemetry::ACCOUNT_STATE, "account" => account.id.clone(), "state" => s)
                    .set(on);
            }
            let Some(window) = health.unified_window else {
                continue;
            };
            for (name, w) in [("5h", &window.five_hour), ("7d", &window.seven_day)] {
                if let Some(u) = w.utilization {
                    metrics::gauge!(telemetry::WINDOW_UTILIZATION, "account" => account.id.clone(), "window" => name)
                        .set(u);
                }
            }
        }
    }
}

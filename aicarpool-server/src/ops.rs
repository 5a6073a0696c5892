//! Operations endpoints: `/healthz` and `/readyz` (the database, and the
//! shared limiter's Redis when one is configured).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        )
    };
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed: database");
        return unavailable("database unreachable");
    }
    if let Err(e) = state.gateway.limiter().ready().await {
        tracing::warn!(error = %e, "readiness check failed: redis");
        return unavailable("redis unreachable");
    }
    (StatusCode::OK, Json(json!({"status": "ready"})))
}

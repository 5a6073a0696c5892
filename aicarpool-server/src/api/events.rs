//! Enterprise events: what an enterprise's admins should know about, such
//! as a department or enterprise budget crossing a threshold.

use aicarpool_core::enterprise::EnterpriseEvent;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use super::caller::{Action, Caller};
use super::enterprises::enterprise;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;

#[derive(Debug, Deserialize)]
pub struct EventParams {
    limit: Option<u32>,
}

/// Newest first; enterprise owners and admins.
#[utoipa::path(get, path = "/api/enterprises/{id}/events", tag = "enterprises",
    params(("id" = String, Path), ("limit" = Option<u32>, Query, description = "1 to 500, default 100")),
    responses((status = 200, description = "events, newest first")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<Json<Vec<EnterpriseEvent>>> {
    let Query(p) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let e = enterprise(&state, &caller, &id, Action::Manage).await?;
    Ok(Json(state.store.events(&e.id, limit).await?))
}

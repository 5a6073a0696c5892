//! `GET /api/groups/{id}/routing`: which of a group's accounts can take a
//! request now, and why the others cannot (cooling, needs attention,
//! saturated, disabled, model not served) — what an admin looks at when
//! members report errors.

use aicarpool_core::account::Protocol;
use aicarpool_core::binding::BindingMode;
use aicarpool_core::org::GroupRole;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::caller::{require_group_role, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct RoutingQuery {
    /// Judge eligibility for this model (any model when absent).
    model: Option<String>,
    /// Judge eligibility for requests of this protocol (each account's own
    /// when absent).
    protocol: Option<String>,
}

#[utoipa::path(get, path = "/api/groups/{id}/routing", tag = "groups",
    params(("id" = String, Path),
           ("model" = Option<String>, Query, description = "judge eligibility for this model"),
           ("protocol" = Option<String>, Query,
            description = "`anthropic`, `gemini` or `openai`: judge eligibility for requests \
                           of this protocol (default: each account for its own)")),
    responses((status = 200, description = "each account of the group with `eligible` and a `reason`")))]
pub async fn routing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<RoutingQuery>,
) -> ApiResult<Json<Value>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    let model = query
        .model
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty());
    if model.as_deref().is_some_and(|m| m.chars().count() > 200) {
        return Err(ApiError::bad_request(
            "model must be at most 200 characters",
        ));
    }
    let protocol = match query.protocol.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("anthropic") => Some(Protocol::Anthropic),
        Some("gemini") => Some(Protocol::Gemini),
        Some("openai") => Some(Protocol::Openai),
        Some(_) => {
            return Err(ApiError::bad_request(
                "protocol must be one of anthropic, gemini, openai",
            ))
        }
    };
    let binding = state.store.binding(&group.id).await?;
    let candidates = state
        .gateway
        .routing(&group.id, model.as_deref(), protocol)
        .await
        .map_err(|e| {
            tracing::error!(group_id = %group.id, error = %e, "routing table");
            ApiError::internal("could not load the group's accounts")
        })?;
    let eligible = candidates.iter().filter(|c| c.eligible).count();
    Ok(Json(json!({
        "groupId": group.id,
        "mode": binding.as_ref().map_or(BindingMode::Shared, |b| b.mode),
        "implicit": binding.is_none(),
        "model": model,
        "protocol": protocol,
        "eligible": eligible,
        "candidates": candidates,
    })))
}

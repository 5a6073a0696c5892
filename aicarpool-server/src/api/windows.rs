//! `GET /api/groups/{id}/windows`: each subscription window of the
//! group's accounts, how full it is, and each member's use and fair share
//! of it. Owners and admins see every member; a member sees their own
//! line and the window's totals.

use std::collections::HashMap;

use aicarpool_core::fare::Cents;
use aicarpool_core::gateway::WindowReport;
use aicarpool_core::org::GroupRole;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

use super::caller::{require_group_role, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// One window of one account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    pub account_id: String,
    pub name: String,
    /// `5h` or `7d`.
    pub window: &'static str,
    /// 0–1, as the upstream last reported it.
    pub utilization: Option<f64>,
    pub resets_at: chrono::DateTime<chrono::Utc>,
    /// List-price USD the window holds, estimated from the use sent and
    /// the utilization reported; `null` until the window has moved 5 %.
    #[schema(value_type = Option<f64>)]
    pub capacity_estimate_usd: Option<Cents>,
    pub members: Vec<MemberWindowView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberWindowView {
    pub user_id: String,
    pub name: String,
    #[schema(value_type = f64)]
    pub used_usd: Cents,
    /// `null` while the capacity is unknown.
    #[schema(value_type = Option<f64>)]
    pub share_usd: Option<Cents>,
    /// `within` or `over`.
    pub state: &'static str,
}

#[utoipa::path(get, path = "/api/groups/{id}/windows", tag = "fair share",
    params(("id" = String, Path)),
    responses((status = 200, description = "each subscription window with the members' use and share",
        body = Vec<WindowView>)))]
pub async fn windows(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<WindowView>>> {
    let (group, role) = require_group_role(&state, &caller, &id, GroupRole::Member).await?;
    let reports = state
        .gateway
        .windows(&group.id)
        .await
        .map_err(|e| ApiError::internal(format!("reading the window ledger: {e}")))?;
    let names: HashMap<String, String> = state
        .store
        .members(&group.id)
        .await?
        .into_iter()
        .map(|(_, u)| (u.id, u.name))
        .collect();
    let sees_all = role.can_manage();
    let view = |r: WindowReport| WindowView {
        members: r
            .members
            .into_iter()
            .filter(|m| sees_all || m.user_id == caller.id())
            .map(|m| MemberWindowView {
                name: names.get(&m.user_id).cloned().unwrap_or_default(),
                used_usd: Cents::from_micro_usd(m.used_micro_usd),
                share_usd: m.share_micro_usd.map(Cents::from_micro_usd),
                state: if m.over { "over" } else { "within" },
                user_id: m.user_id,
            })
            .collect(),
        account_id: r.account_id,
        name: r.name,
        window: r.window.as_str(),
        utilization: r.utilization,
        resets_at: r.resets_at,
        capacity_estimate_usd: r.capacity_estimate_micro_usd.map(Cents::from_micro_usd),
    };
    Ok(Json(reports.into_iter().map(view).collect()))
}

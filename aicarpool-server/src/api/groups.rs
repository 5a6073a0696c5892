//! Carpool groups and their members.

use aicarpool_core::id::new_id;
use aicarpool_core::key::KeyRecord;
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::org::{Group, GroupRole, Membership};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;

use super::caller::{require_group_role, valid_id, Caller};
use super::input::{self, double_option, ValidJson};
use super::views::{GroupView, MemberView};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest `maxMembers` accepted.
const MAX_MEMBERS_CAP: u32 = 100_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroup {
    name: String,
    enterprise_id: Option<String>,
    department_id: Option<String>,
    max_members: Option<u32>,
}

fn max_members(v: Option<u32>) -> ApiResult<Option<u32>> {
    match v {
        Some(n) if n == 0 || n > MAX_MEMBERS_CAP => Err(ApiError::bad_request(format!(
            "maxMembers must be between 1 and {MAX_MEMBERS_CAP}"
        ))),
        other => Ok(other),
    }
}

fn limits(l: KeyLimits) -> ApiResult<KeyLimits> {
    l.validate().map_err(ApiError::bad_request)?;
    Ok(l)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    if body.enterprise_id.is_some() || body.department_id.is_some() {
        return Err(ApiError::bad_request(
            "enterpriseId/departmentId: enterprise groups are not available yet",
        ));
    }
    let now = Utc::now();
    let group = Group {
        id: new_id(),
        name: input::name("name", &body.name)?,
        enterprise_id: None,
        department_id: None,
        max_members: max_members(body.max_members)?,
        limits: KeyLimits::default(),
        created_by: caller.id().to_owned(),
        created_at: now,
    };
    let owner = Membership {
        group_id: group.id.clone(),
        user_id: caller.id().to_owned(),
        role: GroupRole::Owner,
        joined_at: now,
    };
    state.store.create_group(&group, &owner).await?;
    tracing::info!(group_id = %group.id, user_id = %caller.id(), "group created");
    Ok((
        StatusCode::CREATED,
        Json(GroupView {
            group,
            role: Some(GroupRole::Owner),
        }),
    ))
}

/// The caller's groups; a system admin sees every group.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<GroupView>>> {
    let mine = state.store.groups_of_user(caller.id()).await?;
    let mut out: Vec<GroupView> = if caller.is_admin() {
        state
            .store
            .groups()
            .await?
            .into_iter()
            .map(|group| {
                let role = mine.iter().find(|(g, _)| g.id == group.id).map(|(_, r)| *r);
                GroupView { group, role }
            })
            .collect()
    } else {
        mine.into_iter()
            .map(|(group, role)| GroupView {
                group,
                role: Some(role),
            })
            .collect()
    };
    out.sort_by_key(|v| v.group.created_at);
    Ok(Json(out))
}

/// The caller's own role, `None` for a system admin who is not a member.
async fn own_role(
    state: &AppState,
    caller: &Caller,
    group_id: &str,
) -> ApiResult<Option<GroupRole>> {
    Ok(state
        .store
        .membership(group_id, caller.id())
        .await?
        .map(|m| m.role))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<GroupView>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Member).await?;
    let role = own_role(&state, &caller, &id).await?;
    Ok(Json(GroupView { group, role }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchGroup {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    max_members: Option<Option<u32>>,
    limits: Option<KeyLimits>,
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PatchGroup>,
) -> ApiResult<Json<GroupView>> {
    let (mut group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    if let Some(n) = &body.name {
        group.name = input::name("name", n)?;
    }
    if let Some(m) = body.max_members {
        group.max_members = max_members(m)?;
    }
    if let Some(l) = body.limits {
        group.limits = limits(l)?;
    }
    state.store.update_group(&group).await?;
    // Group limits are read by the data plane with the group's routes.
    state.gateway.invalidate_group(&group.id);
    tracing::info!(group_id = %group.id, "group updated");
    let role = own_role(&state, &caller, &id).await?;
    Ok(Json(GroupView { group, role }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Owner).await?;
    // The store deletes the keys with the group: remember them for the cache.
    let keys = state.store.keys_of_group(&group.id, None).await?;
    state.store.delete_group(&group.id).await?;
    forget_keys(&state, &keys);
    state.gateway.invalidate_group(&group.id);
    // Accounts the group owned are gone from other groups' bindings too.
    state.gateway.invalidate_routes();
    tracing::info!(group_id = %group.id, keys = keys.len(), "group deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Drops deleted keys from the gateway's cache.
pub fn forget_keys(state: &AppState, keys: &[KeyRecord]) {
    for hash in keys.iter().filter_map(|k| k.key_hash.as_ref()) {
        state.gateway.invalidate_key(hash);
    }
}

pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<MemberView>>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Member).await?;
    let members = state.store.members(&group.id).await?;
    Ok(Json(
        members.iter().map(|(m, u)| MemberView::new(m, u)).collect(),
    ))
}

#[derive(Debug, Deserialize)]
pub struct PatchMember {
    role: String,
}

pub async fn patch_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    ValidJson(body): ValidJson<PatchMember>,
) -> ApiResult<Json<MemberView>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    let role = match GroupRole::parse(&body.role) {
        Some(r @ (GroupRole::Admin | GroupRole::Member)) => r,
        _ => return Err(ApiError::bad_request("role must be `admin` or `member`")),
    };
    let target = member(&state, &group.id, &user_id).await?;
    if target.role == GroupRole::Owner {
        return Err(ApiError::conflict("the owner's role cannot be changed"));
    }
    state
        .store
        .set_member_role(&group.id, &user_id, role)
        .await?;
    tracing::info!(group_id = %group.id, %user_id, role = role.as_str(), "member role changed");
    let user = state
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    let updated = Membership { role, ..target };
    Ok(Json(MemberView::new(&updated, &user)))
}

async fn member(state: &AppState, group_id: &str, user_id: &str) -> ApiResult<Membership> {
    valid_id(user_id, "member")?;
    state
        .store
        .membership(group_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))
}

/// Removes a member (owner/admin), or the caller leaves. The member's keys
/// in the group are deleted with the membership.
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let leaving = user_id == caller.id();
    let needed = if leaving {
        GroupRole::Member
    } else {
        GroupRole::Admin
    };
    let (group, _) = require_group_role(&state, &caller, &id, needed).await?;
    let target = member(&state, &group.id, &user_id).await?;
    if target.role == GroupRole::Owner {
        return Err(ApiError::conflict(
            "the owner cannot be removed; delete the group instead",
        ));
    }
    let keys = state.store.remove_member(&group.id, &user_id).await?;
    forget_keys(&state, &keys);
    tracing::info!(group_id = %group.id, %user_id, keys = keys.len(), "member removed");
    Ok(StatusCode::NO_CONTENT)
}

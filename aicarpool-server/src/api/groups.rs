//! Carpool groups and their members.

use aicarpool_core::carpool::{validate_share_weight, FairShare, FareSplit};
use aicarpool_core::id::new_id;
use aicarpool_core::key::KeyRecord;
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::org::{Group, GroupRole, Membership};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::audit::{self, Scope};
use super::caller::{
    authorize, group_role, require_group_role, valid_id, Action, Caller, Resource, Target,
};
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

/// Group limits may carry `perMember` (each member across their keys).
fn limits(l: KeyLimits) -> ApiResult<KeyLimits> {
    l.validate_group().map_err(ApiError::bad_request)?;
    Ok(l)
}

#[utoipa::path(post, path = "/api/groups", tag = "groups",
    responses((status = 201, description = "the group; the caller is its owner")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let name = input::name("name", &body.name)?;
    let max_members = max_members(body.max_members)?;
    let (enterprise_id, department_id) =
        placement(&state, &caller, body.enterprise_id, body.department_id).await?;
    let now = Utc::now();
    let group = Group {
        id: new_id(),
        name,
        enterprise_id,
        department_id,
        max_members,
        limits: KeyLimits::default(),
        fair_share: Default::default(),
        fare_split: Default::default(),
        created_by: caller.id().to_owned(),
        created_at: now,
    };
    let owner = Membership {
        group_id: group.id.clone(),
        user_id: caller.id().to_owned(),
        role: GroupRole::Owner,
        share_weight: aicarpool_core::carpool::DEFAULT_SHARE_WEIGHT,
        joined_at: now,
    };
    state.store.create_group(&group, &owner).await?;
    audit::record(
        &state,
        Some(caller.id()),
        "group.created",
        ("group", &group.id),
        Scope::Group(&group.id),
        json!({"name": group.name, "departmentId": group.department_id}),
    )
    .await;
    tracing::info!(group_id = %group.id, user_id = %caller.id(), "group created");
    Ok((
        StatusCode::CREATED,
        Json(GroupView {
            group,
            role: Some(GroupRole::Owner),
        }),
    ))
}

/// Where a new enterprise group goes: `departmentId` alone implies its
/// enterprise; with both they must agree. The caller must manage the
/// department (its admins may), or the enterprise for a group outside any
/// department. Neither: a standalone carpool group.
async fn placement(
    state: &AppState,
    caller: &Caller,
    enterprise_id: Option<String>,
    department_id: Option<String>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let unknown = |field: &str, id: &str| {
        ApiError::bad_request(format!(
            "{field}: no {} `{id}` where you can create groups",
            if field == "enterpriseId" {
                "enterprise"
            } else {
                "department"
            }
        ))
    };
    let as_field = |field: &'static str, id: String| {
        move |e: ApiError| {
            if e.status == StatusCode::NOT_FOUND {
                unknown(field, &id)
            } else {
                e
            }
        }
    };
    match (enterprise_id, department_id) {
        (None, None) => Ok((None, None)),
        (e, Some(d)) => {
            let access = authorize(state, caller, Action::Manage, Resource::Department(&d))
                .await
                .map_err(as_field("departmentId", d.clone()))?;
            let Target::Department(dept) = access.target else {
                return Err(ApiError::internal(
                    "authorization loaded the wrong resource",
                ));
            };
            if e.as_ref().is_some_and(|e| *e != dept.enterprise_id) {
                return Err(ApiError::bad_request(
                    "departmentId: the department belongs to another enterprise",
                ));
            }
            Ok((Some(dept.enterprise_id), Some(dept.id)))
        }
        (Some(e), None) => {
            authorize(state, caller, Action::Manage, Resource::Enterprise(&e))
                .await
                .map_err(as_field("enterpriseId", e.clone()))?;
            Ok((Some(e), None))
        }
    }
}

/// The caller's groups; a system admin sees every group, enterprise staff
/// and department admins also the groups they administer that way.
#[utoipa::path(get, path = "/api/groups", tag = "groups",
    responses((status = 200, description = "the groups the caller belongs to or administers")))]
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
        let mut out: Vec<GroupView> = mine
            .into_iter()
            .map(|(group, role)| GroupView {
                group,
                role: Some(role),
            })
            .collect();
        for group in enterprise_groups(&state, &caller).await? {
            if !out.iter().any(|v| v.group.id == group.id) {
                out.push(GroupView { group, role: None });
            }
        }
        out
    };
    out.sort_by_key(|v| v.group.created_at);
    Ok(Json(out))
}

/// Groups the caller administers through an enterprise or department role.
async fn enterprise_groups(state: &AppState, caller: &Caller) -> ApiResult<Vec<Group>> {
    let mut enterprises: Vec<String> = state
        .store
        .enterprises_of_user(caller.id())
        .await?
        .into_iter()
        .map(|(e, _)| e.id)
        .collect();
    for d in state.store.departments_administered_by(caller.id()).await? {
        if !enterprises.contains(&d.enterprise_id) {
            enterprises.push(d.enterprise_id);
        }
    }
    let mut out = Vec::new();
    for e in enterprises {
        for g in state.store.groups_of_enterprise(&e).await? {
            if group_role(state, caller, &g).await?.is_some() {
                out.push(g);
            }
        }
    }
    Ok(out)
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

#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups",
    params(("id" = String, Path)),
    responses((status = 200, description = "the group")))]
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
    fair_share: Option<FairShare>,
    fare_split: Option<FareSplit>,
    /// Moves an enterprise group to another department of its enterprise
    /// (`null`: out of any department).
    #[serde(default, deserialize_with = "double_option")]
    department_id: Option<Option<String>>,
}

#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups",
    params(("id" = String, Path)),
    responses((status = 200, description = "the changed group")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PatchGroup>,
) -> ApiResult<Json<GroupView>> {
    let (mut group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    let before = group.clone();
    if let Some(n) = &body.name {
        group.name = input::name("name", n)?;
    }
    if let Some(m) = body.max_members {
        group.max_members = max_members(m)?;
    }
    if let Some(l) = body.limits {
        group.limits = limits(l)?;
    }
    if let Some(f) = body.fair_share {
        f.validate().map_err(ApiError::bad_request)?;
        group.fair_share = f;
    }
    if let Some(f) = body.fare_split {
        f.validate().map_err(ApiError::bad_request)?;
        group.fare_split = f;
    }
    if let Some(to) = body.department_id {
        move_group(&state, &caller, &mut group, to).await?;
    }
    state.store.update_group(&group).await?;
    // Group limits are read by the data plane with the group's routes.
    state.gateway.invalidate_group(&group.id);
    tracing::info!(group_id = %group.id, "group updated");
    audit_changes(&state, &caller, &before, &group).await;
    let role = own_role(&state, &caller, &id).await?;
    Ok(Json(GroupView { group, role }))
}

/// Records what a `PATCH` changed (a move is recorded as `group.moved`):
/// the fields, with their values before and after.
async fn audit_changes(state: &AppState, caller: &Caller, before: &Group, after: &Group) {
    let mut fields = Vec::new();
    let (mut was, mut now) = (serde_json::Map::new(), serde_json::Map::new());
    let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
        if old != new {
            fields.push(field.to_owned());
            was.insert(field.to_owned(), old);
            now.insert(field.to_owned(), new);
        }
    };
    note("name", json!(before.name), json!(after.name));
    note(
        "maxMembers",
        json!(before.max_members),
        json!(after.max_members),
    );
    note("limits", json!(before.limits), json!(after.limits));
    note(
        "fairShare",
        json!(before.fair_share),
        json!(after.fair_share),
    );
    note(
        "fareSplit",
        json!(before.fare_split),
        json!(after.fare_split),
    );
    if fields.is_empty() {
        return;
    }
    audit::record(
        state,
        Some(caller.id()),
        "group.changed",
        ("group", &after.id),
        Scope::Group(&after.id),
        json!({"fields": fields, "before": was, "after": now}),
    )
    .await;
}

/// Moves `group` to department `to` of its own enterprise; the caller must
/// manage the destination (or the enterprise, to leave every department).
async fn move_group(
    state: &AppState,
    caller: &Caller,
    group: &mut Group,
    to: Option<String>,
) -> ApiResult<()> {
    let Some(enterprise_id) = group.enterprise_id.clone() else {
        return Err(ApiError::bad_request(
            "departmentId: a carpool group belongs to no enterprise and has no department",
        ));
    };
    let (_, department_id) = placement(state, caller, Some(enterprise_id), to).await?;
    let from = std::mem::replace(&mut group.department_id, department_id);
    audit::record(
        state,
        Some(caller.id()),
        "group.moved",
        ("group", &group.id),
        Scope::Group(&group.id),
        json!({"from": from, "to": group.department_id}),
    )
    .await;
    Ok(())
}

#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups",
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted; its keys stop working at once")))]
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
    audit::record(
        &state,
        Some(caller.id()),
        "group.deleted",
        ("group", &group.id),
        match &group.enterprise_id {
            Some(e) => Scope::Enterprise(e),
            None => Scope::Group(&group.id),
        },
        json!({"name": group.name, "keys": keys.len()}),
    )
    .await;
    tracing::info!(group_id = %group.id, keys = keys.len(), "group deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Drops deleted keys from the gateway's cache.
pub fn forget_keys(state: &AppState, keys: &[KeyRecord]) {
    for hash in keys.iter().filter_map(|k| k.key_hash.as_ref()) {
        state.gateway.invalidate_key(hash);
    }
}

#[utoipa::path(get, path = "/api/groups/{id}/members", tag = "groups",
    params(("id" = String, Path)),
    responses((status = 200, description = "the members")))]
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchMember {
    role: Option<String>,
    /// The member's weight in the fair share of a window (1–100).
    share_weight: Option<u32>,
}

#[utoipa::path(patch, path = "/api/groups/{id}/members/{user_id}", tag = "groups",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, description = "the member with the new role or share weight")))]
pub async fn patch_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    ValidJson(body): ValidJson<PatchMember>,
) -> ApiResult<Json<MemberView>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    let role = match body.role.as_deref().map(GroupRole::parse) {
        None => None,
        Some(Some(r @ (GroupRole::Admin | GroupRole::Member))) => Some(r),
        Some(_) => return Err(ApiError::bad_request("role must be `admin` or `member`")),
    };
    if let Some(w) = body.share_weight {
        validate_share_weight(w).map_err(ApiError::bad_request)?;
    }
    if role.is_none() && body.share_weight.is_none() {
        return Err(ApiError::bad_request("give `role` or `shareWeight`"));
    }
    let target = member(&state, &group.id, &user_id).await?;
    if target.role == GroupRole::Owner && role.is_some_and(|r| r != GroupRole::Owner) {
        return Err(ApiError::conflict("the owner's role cannot be changed"));
    }
    let updated = Membership {
        role: role.unwrap_or(target.role),
        share_weight: body.share_weight.unwrap_or(target.share_weight),
        ..target.clone()
    };
    state.store.update_member(&updated).await?;
    if updated.role != target.role {
        audit::record(
            &state,
            Some(caller.id()),
            "member.role_changed",
            ("user", &user_id),
            Scope::Group(&group.id),
            json!({"from": target.role, "to": updated.role}),
        )
        .await;
        tracing::info!(group_id = %group.id, %user_id, role = updated.role.as_str(), "member role changed");
    }
    if updated.share_weight != target.share_weight {
        // The data plane reads weights with the group's routes.
        state.gateway.invalidate_group(&group.id);
        audit::record(
            &state,
            Some(caller.id()),
            "member.share_weight_changed",
            ("user", &user_id),
            Scope::Group(&group.id),
            json!({"from": target.share_weight, "to": updated.share_weight}),
        )
        .await;
    }
    let user = state
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
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
#[utoipa::path(delete, path = "/api/groups/{id}/members/{user_id}", tag = "groups",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "removed; their keys are revoked")))]
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
    audit::record(
        &state,
        Some(caller.id()),
        if leaving {
            "member.left"
        } else {
            "member.removed"
        },
        ("user", &user_id),
        Scope::Group(&group.id),
        json!({"role": target.role, "keysRevoked": keys.len()}),
    )
    .await;
    tracing::info!(group_id = %group.id, %user_id, keys = keys.len(), "member removed");
    Ok(StatusCode::NO_CONTENT)
}

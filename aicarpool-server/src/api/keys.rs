//! Member keys: issue, list, change, rotate, revoke. The key itself is
//! shown only by create and rotate; the store keeps its SHA-256.

use aicarpool_core::id::{is_valid_id, new_id};
use aicarpool_core::key::{KeyRecord, MemberKey, Service};
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::org::GroupRole;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::audit::{self, Scope};
use super::caller::{group_role, require_group_role, role_at_least, valid_id, Caller};
use super::input::{self, double_option, ValidJson};
use super::views::{key_guide, IssuedKeyView};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_GLOBS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateKey {
    name: Option<String>,
    user_id: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    services: Option<Vec<Service>>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    clients: Vec<String>,
    #[serde(default)]
    limits: KeyLimits,
}

#[utoipa::path(post, path = "/api/groups/{id}/keys", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 201, description = "the key record, the key (shown once) and the set-up guide")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
    ValidJson(body): ValidJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<IssuedKeyView>)> {
    let (group, role) = require_group_role(&state, &caller, &group_id, GroupRole::Member).await?;
    let user_id = match body.user_id.as_deref() {
        None => caller.id().to_owned(),
        Some(u) if u == caller.id() => u.to_owned(),
        Some(u) => {
            if !caller.is_admin() && !role_at_least(role, GroupRole::Admin) {
                return Err(ApiError::forbidden(
                    "only the group's owner or admins issue keys for other members",
                ));
            }
            u.to_owned()
        }
    };
    if !is_valid_id(&user_id) || state.store.membership(&group.id, &user_id).await?.is_none() {
        return Err(ApiError::bad_request(
            "userId: that user is not a member of this group",
        ));
    }
    let now = Utc::now();
    let mut record = KeyRecord {
        id: new_id(),
        group_id: group.id.clone(),
        user_id,
        name: input::name("name", body.name.as_deref().unwrap_or("default"))?,
        key_hash: None,
        hint: String::new(),
        enabled: true,
        expires_at: future("expiresAt", body.expires_at)?,
        services: services(body.services)?,
        models: input::string_list("models", &body.models, MAX_GLOBS)?,
        clients: input::string_list("clients", &body.clients, MAX_GLOBS)?,
        limits: limits(body.limits)?,
        created_at: now,
        updated_at: now,
    };
    let key = MemberKey::generate(&record.group_id, &record.user_id);
    record.key_hash = Some(key.hash());
    record.hint = key.hint();
    state.store.create_key(&record).await?;
    audit::record(
        &state,
        Some(caller.id()),
        "key.issued",
        ("key", &record.id),
        Scope::Group(&record.group_id),
        json!({"name": record.name, "userId": record.user_id}),
    )
    .await;
    tracing::info!(key_id = %record.id, group_id = %record.group_id, user_id = %record.user_id, "key issued");
    Ok((StatusCode::CREATED, Json(issued(&state, record, &key))))
}

fn issued(state: &AppState, record: KeyRecord, key: &MemberKey) -> IssuedKeyView {
    let secret = key.expose();
    let guide = key_guide(&state.config.public_url(), &secret, &record.services);
    IssuedKeyView {
        record,
        key: secret,
        guide,
    }
}

fn future(field: &str, at: Option<DateTime<Utc>>) -> ApiResult<Option<DateTime<Utc>>> {
    match at {
        Some(t) if t <= Utc::now() => Err(ApiError::bad_request(format!(
            "{field} must be in the future"
        ))),
        other => Ok(other),
    }
}

fn services(s: Option<Vec<Service>>) -> ApiResult<Vec<Service>> {
    let Some(list) = s else {
        return Ok(Service::ALL.to_vec());
    };
    if list.is_empty() {
        return Err(ApiError::bad_request(
            "services must name at least one of claude, gemini, openai (omit it for all)",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn limits(l: KeyLimits) -> ApiResult<KeyLimits> {
    l.validate().map_err(ApiError::bad_request)?;
    Ok(l)
}

/// Owner/admin see every key of the group; a member only their own.
#[utoipa::path(get, path = "/api/groups/{id}/keys", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 200, description = "keys of the group (a member sees their own)")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(group_id): Path<String>,
) -> ApiResult<Json<Vec<KeyRecord>>> {
    let (group, role) = require_group_role(&state, &caller, &group_id, GroupRole::Member).await?;
    let only = (!caller.is_admin() && !role_at_least(role, GroupRole::Admin)).then(|| caller.id());
    Ok(Json(state.store.keys_of_group(&group.id, only).await?))
}

/// A key the caller may manage: their own, or any in a group they
/// administer (through the group, its department or its enterprise).
/// Everyone else gets 404.
async fn visible_key(state: &AppState, caller: &Caller, id: &str) -> ApiResult<KeyRecord> {
    let not_found = || ApiError::not_found("key");
    valid_id(id, "key")?;
    let key = state.store.key(id).await?.ok_or_else(not_found)?;
    if key.user_id == caller.id() || manages_group(state, caller, &key.group_id).await? {
        return Ok(key);
    }
    Err(not_found())
}

/// Whether the caller is a system admin or administers the group.
async fn manages_group(state: &AppState, caller: &Caller, group_id: &str) -> ApiResult<bool> {
    let Some(group) = state.store.group(group_id).await? else {
        return Ok(caller.is_admin());
    };
    Ok(group_role(state, caller, &group)
        .await?
        .is_some_and(|r| role_at_least(r, GroupRole::Admin)))
}

#[utoipa::path(get, path = "/api/keys/{id}", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 200, description = "the key record")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyRecord>> {
    Ok(Json(visible_key(&state, &caller, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchKey {
    name: Option<String>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    expires_at: Option<Option<DateTime<Utc>>>,
    services: Option<Vec<Service>>,
    models: Option<Vec<String>>,
    clients: Option<Vec<String>>,
    limits: Option<KeyLimits>,
}

#[utoipa::path(patch, path = "/api/keys/{id}", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 200, description = "the changed key record")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PatchKey>,
) -> ApiResult<Json<KeyRecord>> {
    let mut key = visible_key(&state, &caller, &id).await?;
    let changes_policy = body.services.is_some()
        || body.models.is_some()
        || body.clients.is_some()
        || body.limits.is_some();
    if changes_policy && !manages_group(&state, &caller, &key.group_id).await? {
        // Limits and allow-lists set by the group's admins must hold.
        return Err(ApiError::forbidden(
            "only the group's owner or admins change a key's services, models, clients or limits",
        ));
    }
    if let Some(n) = &body.name {
        key.name = input::name("name", n)?;
    }
    if let Some(e) = body.enabled {
        key.enabled = e;
    }
    if let Some(e) = body.expires_at {
        key.expires_at = future("expiresAt", e)?;
    }
    if body.services.is_some() {
        key.services = services(body.services)?;
    }
    if let Some(m) = &body.models {
        key.models = input::string_list("models", m, MAX_GLOBS)?;
    }
    if let Some(c) = &body.clients {
        key.clients = input::string_list("clients", c, MAX_GLOBS)?;
    }
    if let Some(l) = body.limits {
        key.limits = limits(l)?;
    }
    key.updated_at = Utc::now();
    state.store.update_key(&key).await?;
    forget(&state, &key);
    audit::record(
        &state,
        Some(caller.id()),
        "key.changed",
        ("key", &key.id),
        Scope::Group(&key.group_id),
        json!({"name": key.name, "userId": key.user_id, "enabled": key.enabled}),
    )
    .await;
    tracing::info!(key_id = %key.id, "key updated");
    Ok(Json(key))
}

#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 204, description = "revoked at once")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = visible_key(&state, &caller, &id).await?;
    state.store.delete_key(&key.id).await?;
    forget(&state, &key);
    audit::record(
        &state,
        Some(caller.id()),
        "key.revoked",
        ("key", &key.id),
        Scope::Group(&key.group_id),
        json!({"name": key.name, "userId": key.user_id}),
    )
    .await;
    tracing::info!(key_id = %key.id, "key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for the same key id and settings; the old one stops working.
#[utoipa::path(post, path = "/api/keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 200, description = "a new secret for the same key")))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IssuedKeyView>> {
    let mut record = visible_key(&state, &caller, &id).await?;
    let old = record.clone();
    let key = MemberKey::generate(&record.group_id, &record.user_id);
    record.key_hash = Some(key.hash());
    record.hint = key.hint();
    record.updated_at = Utc::now();
    state.store.update_key(&record).await?;
    forget(&state, &old);
    audit::record(
        &state,
        Some(caller.id()),
        "key.rotated",
        ("key", &record.id),
        Scope::Group(&record.group_id),
        json!({"name": record.name, "userId": record.user_id}),
    )
    .await;
    tracing::info!(key_id = %record.id, "key rotated");
    Ok(Json(issued(&state, record, &key)))
}

/// The gateway caches keys by hash: drop the old entry.
fn forget(state: &AppState, key: &KeyRecord) {
    if let Some(h) = &key.key_hash {
        state.gateway.invalidate_key(h);
    }
}

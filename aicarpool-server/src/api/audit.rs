//! The audit log: who did what to which resource.
//!
//! Handlers call [`record`] after a change succeeds; `GET /api/audit` reads
//! the log back for enterprise admins (`?enterpriseId=`), group admins
//! (`?groupId=`) and system admins (no filter). Entries hold ids, names and
//! roles, never a secret: no key, token, password or credential is ever
//! passed in.

use std::collections::HashMap;

use aicarpool_core::account::{Account, AccountOwner};
use aicarpool_core::enterprise::{AuditEntry, AuditQuery};
use aicarpool_core::id::new_id;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::caller::{authorize, Action, Caller, Resource};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;

/// Where a change happened, so the right admins can read about it.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Nowhere in particular (failed logins): system admins only.
    System,
    Enterprise(&'a str),
    /// A group; its enterprise is looked up.
    Group(&'a str),
    /// The account's owner: its group (and enterprise) or its enterprise.
    Account(&'a Account),
}

/// Appends an entry. Failures are logged, never returned: the change it
/// describes has already happened.
pub async fn record(
    state: &AppState,
    actor: Option<&str>,
    action: &str,
    target: (&str, &str),
    scope: Scope<'_>,
    detail: Value,
) {
    let (enterprise_id, group_id) = match scope {
        Scope::System => (None, None),
        Scope::Enterprise(e) => (Some(e.to_owned()), None),
        Scope::Group(g) => (enterprise_of_group(state, g).await, Some(g.to_owned())),
        Scope::Account(a) => match &a.owner {
            AccountOwner::Enterprise(e) => (Some(e.clone()), None),
            AccountOwner::Group(g) => (enterprise_of_group(state, g).await, Some(g.clone())),
        },
    };
    let entry = AuditEntry {
        id: new_id(),
        at: Utc::now(),
        actor_id: actor.map(str::to_owned),
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        enterprise_id,
        group_id,
        detail,
    };
    if let Err(e) = state.store.append_audit(&entry).await {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}

async fn enterprise_of_group(state: &AppState, group_id: &str) -> Option<String> {
    match state.store.group(group_id).await {
        Ok(g) => g.and_then(|g| g.enterprise_id),
        Err(e) => {
            tracing::warn!(error = %e, "audit: group lookup failed");
            None
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditParams {
    enterprise_id: Option<String>,
    group_id: Option<String>,
    before: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

/// An entry with the actor's email and name, for people reading the log.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    #[serde(flatten)]
    entry: AuditEntry,
    actor_email: Option<String>,
    actor_name: Option<String>,
}

/// `GET /api/audit`: newest first; `before` pages back.
#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(("enterpriseId" = Option<String>, Query, description = "entries of this enterprise (enterprise owner/admin)"),
           ("groupId" = Option<String>, Query, description = "entries of this group (group owner/admin)"),
           ("before" = Option<String>, Query, description = "RFC 3339; only older entries"),
           ("limit" = Option<u32>, Query, description = "1 to 500, default 100")),
    responses((status = 200, description = "entries, newest first")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> ApiResult<Json<Vec<AuditView>>> {
    let Query(p) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    if let Some(e) = &p.enterprise_id {
        authorize(&state, &caller, Action::Manage, Resource::Enterprise(e)).await?;
    }
    if let Some(g) = &p.group_id {
        authorize(&state, &caller, Action::Manage, Resource::Group(g)).await?;
    }
    if p.enterprise_id.is_none() && p.group_id.is_none() && !caller.is_admin() {
        return Err(ApiError::bad_request(
            "enterpriseId or groupId is required (only system admins read the whole log)",
        ));
    }
    let entries = state
        .store
        .audit(&AuditQuery {
            enterprise_id: p.enterprise_id,
            group_id: p.group_id,
            before: p.before,
            limit,
        })
        .await?;
    let mut people: HashMap<String, Option<(String, String)>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let who = match &entry.actor_id {
            Some(id) => {
                if !people.contains_key(id) {
                    let u = state.store.user(id).await?.map(|u| (u.email, u.name));
                    people.insert(id.clone(), u);
                }
                people.get(id).cloned().flatten()
            }
            None => None,
        };
        let (actor_email, actor_name) = who.unzip();
        out.push(AuditView {
            entry,
            actor_email,
            actor_name,
        });
    }
    Ok(Json(out))
}

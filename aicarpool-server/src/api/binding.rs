//! A group's binding: which accounts serve it, and how.
//!
//! A group without a binding is served by the accounts it owns, in
//! priority order (lower first), as one shared pool. The gateway applies
//! the same rule, and `GET` shows it as `implicit: true`.

use std::collections::HashSet;

use aicarpool_core::account::AccountOwner;
use aicarpool_core::binding::{Binding, BindingMode, BoundAccount};
use aicarpool_core::id::is_valid_id;
use aicarpool_core::org::{Group, GroupRole};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::audit::{self, Scope};
use super::caller::{group_role, require_group_role, role_at_least, Caller};
use super::input::ValidJson;
use super::views::BindingView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_BOUND: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutBinding {
    mode: BindingMode,
    accounts: Vec<BoundIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoundIn {
    account_id: String,
    priority: Option<i32>,
    weight: Option<u32>,
    dedicated: Option<bool>,
}

#[utoipa::path(get, path = "/api/groups/{id}/binding", tag = "binding",
    params(("id" = String, Path)),
    responses((status = 200, description = "the binding (implicit when none was set)")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<BindingView>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    if let Some(b) = state.store.binding(&group.id).await? {
        return Ok(Json(BindingView::explicit(b)));
    }
    let mut own = state.store.accounts_of_group(&group.id).await?;
    // Stable: equal priorities keep creation order.
    own.sort_by_key(|a| a.priority);
    Ok(Json(BindingView {
        group_id: group.id,
        mode: BindingMode::Shared,
        accounts: own
            .into_iter()
            .map(|a| BoundAccount {
                account_id: a.id,
                priority: None,
                weight: None,
                dedicated: false,
            })
            .collect(),
        implicit: true,
    }))
}

#[utoipa::path(put, path = "/api/groups/{id}/binding", tag = "binding",
    params(("id" = String, Path)),
    responses((status = 200, description = "the binding")))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PutBinding>,
) -> ApiResult<Json<BindingView>> {
    let (group, _) = require_group_role(&state, &caller, &id, GroupRole::Admin).await?;
    if body.accounts.len() > MAX_BOUND {
        return Err(ApiError::bad_request(format!(
            "accounts may hold at most {MAX_BOUND} entries"
        )));
    }
    let mut seen = HashSet::new();
    for (i, entry) in body.accounts.iter().enumerate() {
        let field = format!("accounts[{i}]");
        if !seen.insert(entry.account_id.as_str()) {
            return Err(ApiError::bad_request(format!(
                "{field}.accountId: account `{}` is listed twice",
                entry.account_id
            )));
        }
        if entry.weight == Some(0) {
            return Err(ApiError::bad_request(format!(
                "{field}.weight must be at least 1"
            )));
        }
        check_manageable(&state, &caller, &group, &field, &entry.account_id).await?;
    }
    let explicit: Vec<Option<bool>> = body.accounts.iter().map(|a| a.dedicated).collect();
    let mut binding = Binding {
        group_id: group.id.clone(),
        mode: body.mode,
        accounts: body
            .accounts
            .into_iter()
            .map(|a| BoundAccount {
                account_id: a.account_id,
                priority: a.priority,
                weight: a.weight,
                dedicated: false,
            })
            .collect(),
    };
    binding.normalize(&explicit);
    check_exclusivity(&state, &binding).await?;
    state.store.put_binding(&binding).await?;
    state.gateway.invalidate_group(&group.id);
    audit::record(
        &state,
        Some(caller.id()),
        "binding.changed",
        ("binding", &group.id),
        Scope::Group(&group.id),
        json!({"mode": binding.mode, "accounts": binding.accounts.iter().map(|a| &a.account_id).collect::<Vec<_>>()}),
    )
    .await;
    tracing::info!(group_id = %group.id, mode = ?binding.mode, accounts = binding.accounts.len(), "binding set");
    Ok(Json(BindingView::explicit(binding)))
}

/// The caller may bind an account they manage (one owned by a group they
/// administer; any for a system admin), or a pool account of the group's
/// own enterprise. A pool account never serves a group outside its
/// enterprise, whoever asks.
async fn check_manageable(
    state: &AppState,
    caller: &Caller,
    group: &Group,
    field: &str,
    id: &str,
) -> ApiResult<()> {
    let unknown = || {
        ApiError::bad_request(format!(
            "{field}.accountId: no account `{id}` that you manage"
        ))
    };
    if !is_valid_id(id) {
        return Err(unknown());
    }
    let account = state.store.account(id).await?.ok_or_else(unknown)?;
    match &account.owner {
        AccountOwner::Enterprise(e) if group.enterprise_id.as_ref() == Some(e) => Ok(()),
        AccountOwner::Enterprise(_) => Err(ApiError::bad_request(format!(
            "{field}.accountId: account `{id}` belongs to another enterprise's pool"
        ))),
        _ if caller.is_admin() => Ok(()),
        AccountOwner::Group(owner) => {
            let Some(owner) = state.store.group(owner).await? else {
                return Err(unknown());
            };
            match group_role(state, caller, &owner).await? {
                Some(r) if role_at_least(r, GroupRole::Admin) => Ok(()),
                _ => Err(unknown()),
            }
        }
    }
}

/// An account dedicated to one group serves no other: refuse binding an
/// account dedicated elsewhere, and dedicating one another group binds.
async fn check_exclusivity(state: &AppState, binding: &Binding) -> ApiResult<()> {
    for entry in &binding.accounts {
        let others: Vec<(String, bool)> = state
            .store
            .bindings_of_account(&entry.account_id)
            .await?
            .into_iter()
            .filter(|(g, _)| *g != binding.group_id)
            .collect();
        if let Some((g, _)) = others.iter().find(|(_, dedicated)| *dedicated) {
            return Err(ApiError::conflict(format!(
                "account `{}` is dedicated to group `{g}`",
                entry.account_id
            )));
        }
        if entry.dedicated {
            if let Some((g, _)) = others.first() {
                return Err(ApiError::conflict(format!(
                    "account `{}` cannot be dedicated here: group `{g}` also binds it",
                    entry.account_id
                )));
            }
        }
    }
    Ok(())
}

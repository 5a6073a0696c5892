//! Enterprises: create, list, change, delete; their owners and admins;
//! their account pool. Departments are in [`super::departments`].

use aicarpool_core::enterprise::{Budget, Enterprise, EnterpriseMember, EnterpriseRole};
use aicarpool_core::id::{is_valid_id, new_id};
use aicarpool_core::org::{GroupRole, InvitationTarget, User};
use aicarpool_core::store::StoreError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounts::{self, CreateAccount};
use super::audit::{self, Scope};
use super::caller::{authorize, enterprise_role, Action, Caller, Resource, Target};
use super::input::{self, double_option, ValidJson};
use super::invitations::{self, Invitee, Place};
use super::views::AccountView;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest monthly budget accepted, in USD.
pub const MAX_BUDGET_USD: f64 = 1e9;

/// An enterprise as answered, with the caller's role in it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseView {
    pub id: String,
    pub name: String,
    pub monthly_budget_usd: Option<f64>,
    pub daily_token_budget: Option<u64>,
    pub created_by: String,
    pub created_at: chrono::DateTime<Utc>,
    /// `owner`, `admin`, or `member` (a department admin or a member of one
    /// of its groups); `None` for a system admin without a role.
    pub role: Option<GroupRole>,
}

impl EnterpriseView {
    pub fn new(e: Enterprise, role: Option<GroupRole>) -> Self {
        Self {
            id: e.id,
            name: e.name,
            monthly_budget_usd: e.budget.monthly_usd,
            daily_token_budget: e.budget.daily_tokens,
            created_by: e.created_by,
            created_at: e.created_at,
            role,
        }
    }
}

/// `monthlyBudgetUsd` / `dailyTokenBudget` from a body: 0 or `null` clears.
pub fn budget_usd(field: &str, v: Option<f64>) -> ApiResult<Option<f64>> {
    match v {
        Some(x) if !x.is_finite() || !(0.0..=MAX_BUDGET_USD).contains(&x) => {
            Err(ApiError::bad_request(format!(
                "{field} must be a number from 0 to {MAX_BUDGET_USD}"
            )))
        }
        other => Ok(other.filter(|x| *x > 0.0)),
    }
}

pub fn budget_tokens(v: Option<u64>) -> Option<u64> {
    v.filter(|&t| t > 0)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEnterprise {
    name: String,
    monthly_budget_usd: Option<f64>,
    daily_token_budget: Option<u64>,
}

#[utoipa::path(post, path = "/api/enterprises", tag = "enterprises",
    responses((status = 201, description = "the enterprise; the caller is its owner")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CreateEnterprise>,
) -> ApiResult<(StatusCode, Json<EnterpriseView>)> {
    let now = Utc::now();
    let enterprise = Enterprise {
        id: new_id(),
        name: input::name("name", &body.name)?,
        budget: Budget {
            monthly_usd: budget_usd("monthlyBudgetUsd", body.monthly_budget_usd)?,
            daily_tokens: budget_tokens(body.daily_token_budget),
        },
        created_by: caller.id().to_owned(),
        created_at: now,
    };
    let owner = EnterpriseMember {
        enterprise_id: enterprise.id.clone(),
        user_id: caller.id().to_owned(),
        role: EnterpriseRole::Owner,
        added_at: now,
    };
    state.store.create_enterprise(&enterprise, &owner).await?;
    let id = enterprise.id.clone();
    audit::record(
        &state,
        Some(caller.id()),
        "enterprise.created",
        ("enterprise", &id),
        Scope::Enterprise(&id),
        json!({"name": enterprise.name}),
    )
    .await;
    tracing::info!(enterprise_id = %id, user_id = %caller.id(), "enterprise created");
    Ok((
        StatusCode::CREATED,
        Json(EnterpriseView::new(enterprise, Some(GroupRole::Owner))),
    ))
}

/// The enterprises the caller has any role in (every one for a system
/// admin), with that role.
pub async fn visible(state: &AppState, caller: &Caller) -> ApiResult<Vec<EnterpriseView>> {
    let mut ids: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    };
    if caller.is_admin() {
        state
            .store
            .enterprises()
            .await?
            .iter()
            .for_each(|e| push(&e.id));
    }
    for (e, _) in state.store.enterprises_of_user(caller.id()).await? {
        push(&e.id);
    }
    for d in state.store.departments_administered_by(caller.id()).await? {
        push(&d.enterprise_id);
    }
    for (g, _) in state.store.groups_of_user(caller.id()).await? {
        if let Some(e) = &g.enterprise_id {
            push(e);
        }
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(e) = state.store.enterprise(&id).await? {
            let role = own_role(state, caller, &e).await?;
            out.push(EnterpriseView::new(e, role));
        }
    }
    out.sort_by_key(|v| v.created_at);
    Ok(out)
}

/// The caller's own role (a system admin without one gets `None`).
async fn own_role(
    state: &AppState,
    caller: &Caller,
    e: &Enterprise,
) -> ApiResult<Option<GroupRole>> {
    if caller.is_admin()
        && state
            .store
            .enterprise_member(&e.id, caller.id())
            .await?
            .is_none()
    {
        return Ok(None);
    }
    enterprise_role(state, caller, e).await
}

#[utoipa::path(get, path = "/api/enterprises", tag = "enterprises",
    responses((status = 200, description = "the enterprises the caller has a role in")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<EnterpriseView>>> {
    Ok(Json(visible(&state, &caller).await?))
}

/// The enterprise behind `id` if the caller may take `action` on it.
pub async fn enterprise(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<Enterprise> {
    match authorize(state, caller, action, Resource::Enterprise(id))
        .await?
        .target
    {
        Target::Enterprise(e) => Ok(e),
        _ => Err(ApiError::internal(
            "authorization loaded the wrong resource",
        )),
    }
}

#[utoipa::path(get, path = "/api/enterprises/{id}", tag = "enterprises",
    params(("id" = String, Path)), responses((status = 200, description = "the enterprise")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EnterpriseView>> {
    let e = enterprise(&state, &caller, &id, Action::View).await?;
    let role = own_role(&state, &caller, &e).await?;
    Ok(Json(EnterpriseView::new(e, role)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchEnterprise {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    monthly_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double_option")]
    daily_token_budget: Option<Option<u64>>,
}

/// Admins rename; only owners change budgets.
#[utoipa::path(patch, path = "/api/enterprises/{id}", tag = "enterprises",
    params(("id" = String, Path)), responses((status = 200, description = "the changed enterprise")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PatchEnterprise>,
) -> ApiResult<Json<EnterpriseView>> {
    let budget_change = body.monthly_budget_usd.is_some() || body.daily_token_budget.is_some();
    let action = if budget_change {
        Action::Own
    } else {
        Action::Manage
    };
    let mut e = enterprise(&state, &caller, &id, action).await?;
    if let Some(n) = &body.name {
        e.name = input::name("name", n)?;
    }
    if let Some(v) = body.monthly_budget_usd {
        e.budget.monthly_usd = budget_usd("monthlyBudgetUsd", v)?;
    }
    if let Some(v) = body.daily_token_budget {
        e.budget.daily_tokens = budget_tokens(v);
    }
    state.store.update_enterprise(&e).await?;
    if budget_change {
        forget_budgets(&state, &e.id).await?;
    }
    audit::record(&state, Some(caller.id()), "enterprise.changed", ("enterprise", &e.id),
        Scope::Enterprise(&e.id),
        json!({"name": e.name, "monthlyBudgetUsd": e.budget.monthly_usd, "dailyTokenBudget": e.budget.daily_tokens}),
    ).await;
    let role = own_role(&state, &caller, &e).await?;
    Ok(Json(EnterpriseView::new(e, role)))
}

/// The data plane caches each group's budgets: after a budget or the
/// department tree changes, its groups read them again.
pub async fn forget_budgets(state: &AppState, enterprise_id: &str) -> ApiResult<()> {
    for g in state.store.groups_of_enterprise(enterprise_id).await? {
        state.gateway.invalidate_group(&g.id);
    }
    Ok(())
}

/// Owners only. Deletes every department, group (their member keys stop
/// working at once) and pool account of the enterprise.
#[utoipa::path(delete, path = "/api/enterprises/{id}", tag = "enterprises",
    params(("id" = String, Path)), responses((status = 204, description = "deleted with everything in it")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let e = enterprise(&state, &caller, &id, Action::Own).await?;
    let groups = state.store.groups_of_enterprise(&e.id).await?;
    let keys = state.store.delete_enterprise(&e.id).await?;
    super::groups::forget_keys(&state, &keys);
    for g in &groups {
        state.gateway.invalidate_group(&g.id);
    }
    // Pool accounts left other groups' bindings.
    state.gateway.invalidate_routes();
    audit::record(
        &state,
        Some(caller.id()),
        "enterprise.deleted",
        ("enterprise", &e.id),
        Scope::Enterprise(&e.id),
        json!({"name": e.name, "groups": groups.len(), "keys": keys.len()}),
    )
    .await;
    tracing::info!(enterprise_id = %e.id, groups = groups.len(), keys = keys.len(), "enterprise deleted");
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- members

/// A row of `GET /api/enterprises/{id}/members`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnterpriseMemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: EnterpriseRole,
    pub added_at: chrono::DateTime<Utc>,
}

impl EnterpriseMemberView {
    fn new(m: &EnterpriseMember, u: &User) -> Self {
        Self {
            user_id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            role: m.role,
            added_at: m.added_at,
        }
    }
}

#[utoipa::path(get, path = "/api/enterprises/{id}/members", tag = "enterprises",
    params(("id" = String, Path)), responses((status = 200, description = "owners and admins")))]
pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<EnterpriseMemberView>>> {
    let e = enterprise(&state, &caller, &id, Action::Manage).await?;
    let rows = state.store.enterprise_members(&e.id).await?;
    Ok(Json(
        rows.iter()
            .map(|(m, u)| EnterpriseMemberView::new(m, u))
            .collect(),
    ))
}

/// A person named in a body by `userId` or `email`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersonRef {
    user_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

fn enterprise_role_field(v: Option<&str>) -> ApiResult<EnterpriseRole> {
    match v {
        None => Ok(EnterpriseRole::Admin),
        Some(r) => EnterpriseRole::parse(r)
            .ok_or_else(|| ApiError::bad_request("role must be `owner` or `admin`")),
    }
}

/// Owners invite owners and admins (`{userId|email, role}`): the person
/// gets the role once they accept (see [`invitations::invite_person`]).
#[utoipa::path(post, path = "/api/enterprises/{id}/members", tag = "enterprises",
    params(("id" = String, Path)),
    request_body(content = serde_json::Value, description = "{userId|email, role: owner|admin}"),
    responses((status = 202, description = "invited: `{invited, email|userId, role, expiresAt, url, token, emailSent}`, the same whether or not the email has an account"),
        (status = 409, description = "the user already has a role in the enterprise")))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PersonRef>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let e = enterprise(&state, &caller, &id, Action::Own).await?;
    let role = enterprise_role_field(body.role.as_deref())?;
    let invitee = Invitee::from_body(body.user_id.as_deref(), body.email.as_deref())?;
    let target = InvitationTarget::Enterprise {
        enterprise_id: e.id.clone(),
        role,
    };
    invitations::invite_person(
        &state,
        &caller,
        Place::Enterprise(e),
        target,
        invitee,
        "this user already has a role in the enterprise; PATCH it instead",
    )
    .await
}

async fn existing_member(
    state: &AppState,
    enterprise_id: &str,
    user_id: &str,
) -> ApiResult<EnterpriseMember> {
    if !is_valid_id(user_id) {
        return Err(ApiError::not_found("member"));
    }
    state
        .store
        .enterprise_member(enterprise_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))
}

/// Refuses to leave the enterprise without an owner.
async fn keep_an_owner(state: &AppState, enterprise_id: &str, user_id: &str) -> ApiResult<()> {
    let owners = state
        .store
        .enterprise_members(enterprise_id)
        .await?
        .into_iter()
        .filter(|(m, _)| m.role == EnterpriseRole::Owner && m.user_id != user_id)
        .count();
    if owners == 0 {
        return Err(ApiError::conflict("an enterprise keeps at least one owner"));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRole {
    role: String,
}

#[utoipa::path(patch, path = "/api/enterprises/{id}/members/{user_id}", tag = "enterprises",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, description = "the member with the new role")))]
pub async fn patch_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    ValidJson(body): ValidJson<PatchRole>,
) -> ApiResult<Json<EnterpriseMemberView>> {
    let e = enterprise(&state, &caller, &id, Action::Own).await?;
    let role = enterprise_role_field(Some(&body.role))?;
    let mut m = existing_member(&state, &e.id, &user_id).await?;
    if m.role == EnterpriseRole::Owner && role != EnterpriseRole::Owner {
        keep_an_owner(&state, &e.id, &user_id).await?;
    }
    let before = m.role;
    m.role = role;
    state.store.put_enterprise_member(&m).await?;
    let user = state
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    audit::record(
        &state,
        Some(caller.id()),
        "member.role_changed",
        ("user", &user_id),
        Scope::Enterprise(&e.id),
        json!({"from": before.as_str(), "to": role.as_str()}),
    )
    .await;
    Ok(Json(EnterpriseMemberView::new(&m, &user)))
}

#[utoipa::path(delete, path = "/api/enterprises/{id}/members/{user_id}", tag = "enterprises",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "the role is removed")))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let e = enterprise(&state, &caller, &id, Action::Own).await?;
    let m = existing_member(&state, &e.id, &user_id).await?;
    if m.role == EnterpriseRole::Owner {
        keep_an_owner(&state, &e.id, &user_id).await?;
    }
    state
        .store
        .remove_enterprise_member(&e.id, &user_id)
        .await
        .map_err(|err| match err {
            StoreError::NotFound => ApiError::not_found("member"),
            other => other.into(),
        })?;
    audit::record(
        &state,
        Some(caller.id()),
        "member.removed",
        ("user", &user_id),
        Scope::Enterprise(&e.id),
        json!({"role": m.role.as_str()}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- pool

/// An account of the enterprise pool; groups of the enterprise bind it.
#[utoipa::path(post, path = "/api/enterprises/{id}/accounts", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 201, description = "the account, without any secret")))]
pub async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<CreateAccount>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let e = enterprise(&state, &caller, &id, Action::Manage).await?;
    let owner = aicarpool_core::account::AccountOwner::Enterprise(e.id.clone());
    let account = accounts::create_owned(&state, &caller, owner, body).await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// Every account of the enterprise: the pool and its groups' own.
#[utoipa::path(get, path = "/api/enterprises/{id}/accounts", tag = "accounts",
    params(("id" = String, Path)),
    responses((status = 200, description = "pool accounts, then the groups' accounts")))]
pub async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AccountView>>> {
    let e = enterprise(&state, &caller, &id, Action::Manage).await?;
    let mut all = state.store.accounts_of_enterprise(&e.id).await?;
    for g in state.store.groups_of_enterprise(&e.id).await? {
        all.extend(state.store.accounts_of_group(&g.id).await?);
    }
    Ok(Json(super::accounts::account_views(&state, &all).await?))
}

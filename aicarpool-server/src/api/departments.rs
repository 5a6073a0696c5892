//! An enterprise's department tree: create, read as a tree, rename, move,
//! budget, delete; department admins.
//!
//! Rules: a department moves only inside its enterprise and never below
//! itself; the tree is at most [`MAX_DEPARTMENT_DEPTH`] deep; a department
//! is deleted only when it has no sub-departments and no groups (move or
//! delete them first), so nothing is orphaned silently.

use aicarpool_core::enterprise::{self, Budget, Department, MAX_DEPARTMENTS, MAX_DEPARTMENT_DEPTH};
use aicarpool_core::id::new_id;
use aicarpool_core::org::{Group, InvitationTarget};
use aicarpool_core::store::StoreError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{self, Scope};
use super::caller::{authorize, Action, Caller, Resource, Target};
use super::enterprises::{budget_tokens, budget_usd, enterprise, forget_budgets};
use super::input::{self, double_option, ValidJson};
use super::invitations::{self, Invitee, Place};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A person in a department's admin list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonView {
    pub user_id: String,
    pub email: String,
    pub name: String,
}

/// A group in the tree.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    pub id: String,
    pub name: String,
}

/// A department with its admins, its groups and (in the tree) its children.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentView {
    pub id: String,
    pub enterprise_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub monthly_budget_usd: Option<f64>,
    pub daily_token_budget: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub admins: Vec<PersonView>,
    pub groups: Vec<GroupRef>,
    pub children: Vec<DepartmentView>,
}

async fn view(state: &AppState, d: Department, groups: &[Group]) -> ApiResult<DepartmentView> {
    let mut admins = Vec::new();
    for a in state.store.department_admins(&d.id).await? {
        if let Some(u) = state.store.user(&a.user_id).await? {
            admins.push(PersonView {
                user_id: u.id,
                email: u.email,
                name: u.name,
            });
        }
    }
    let groups = groups
        .iter()
        .filter(|g| g.department_id.as_deref() == Some(d.id.as_str()))
        .map(|g| GroupRef {
            id: g.id.clone(),
            name: g.name.clone(),
        })
        .collect();
    Ok(DepartmentView {
        id: d.id,
        enterprise_id: d.enterprise_id,
        parent_id: d.parent_id,
        name: d.name,
        monthly_budget_usd: d.budget.monthly_usd,
        daily_token_budget: d.budget.daily_tokens,
        created_at: d.created_at,
        admins,
        groups,
        children: Vec::new(),
    })
}

/// Nests flat views under their parents (roots first, creation order).
fn nest(mut flat: Vec<DepartmentView>) -> Vec<DepartmentView> {
    fn take_children(
        parent: &str,
        pool: &mut Vec<DepartmentView>,
        depth: usize,
    ) -> Vec<DepartmentView> {
        let (mut mine, rest): (Vec<_>, Vec<_>) = std::mem::take(pool)
            .into_iter()
            .partition(|d| d.parent_id.as_deref() == Some(parent));
        *pool = rest;
        if depth < MAX_DEPARTMENT_DEPTH * 2 {
            for d in &mut mine {
                d.children = take_children(&d.id.clone(), pool, depth + 1);
            }
        }
        mine
    }
    let ids: Vec<String> = flat.iter().map(|d| d.id.clone()).collect();
    // Roots: no parent, or a parent that is gone.
    let (mut roots, mut rest): (Vec<_>, Vec<_>) = std::mem::take(&mut flat)
        .into_iter()
        .partition(|d| d.parent_id.as_ref().is_none_or(|p| !ids.contains(p)));
    for r in &mut roots {
        r.children = take_children(&r.id.clone(), &mut rest, 1);
    }
    roots
}

/// The department behind `id` if the caller may take `action` on it.
async fn department(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<Department> {
    match authorize(state, caller, action, Resource::Department(id))
        .await?
        .target
    {
        Target::Department(d) => Ok(d),
        _ => Err(ApiError::internal(
            "authorization loaded the wrong resource",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDepartment {
    name: String,
    parent_id: Option<String>,
    monthly_budget_usd: Option<f64>,
    daily_token_budget: Option<u64>,
}

/// Top level: enterprise owner/admin. Under a parent: whoever manages the
/// parent (its admins too).
#[utoipa::path(post, path = "/api/enterprises/{id}/departments", tag = "departments",
    params(("id" = String, Path)), responses((status = 201, description = "the department")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<CreateDepartment>,
) -> ApiResult<(StatusCode, Json<DepartmentView>)> {
    let e = match &body.parent_id {
        None => enterprise(&state, &caller, &id, Action::Manage).await?,
        Some(_) => enterprise(&state, &caller, &id, Action::View).await?,
    };
    let tree = state.store.departments(&e.id).await?;
    if let Some(p) = &body.parent_id {
        let parent = tree.iter().find(|d| &d.id == p).ok_or_else(|| {
            ApiError::bad_request(format!("parentId: no department `{p}` in this enterprise"))
        })?;
        department(&state, &caller, &parent.id, Action::Manage).await?;
        if enterprise::ancestry(&tree, p).len() >= MAX_DEPARTMENT_DEPTH {
            return Err(ApiError::bad_request(format!(
                "parentId: departments nest at most {MAX_DEPARTMENT_DEPTH} deep"
            )));
        }
    }
    if tree.len() >= MAX_DEPARTMENTS {
        return Err(ApiError::conflict(format!(
            "an enterprise holds at most {MAX_DEPARTMENTS} departments"
        )));
    }
    let d = Department {
        id: new_id(),
        enterprise_id: e.id.clone(),
        parent_id: body.parent_id,
        name: input::name("name", &body.name)?,
        budget: Budget {
            monthly_usd: budget_usd("monthlyBudgetUsd", body.monthly_budget_usd)?,
            daily_tokens: budget_tokens(body.daily_token_budget),
        },
        created_at: Utc::now(),
    };
    state.store.create_department(&d).await?;
    audit::record(
        &state,
        Some(caller.id()),
        "department.created",
        ("department", &d.id),
        Scope::Enterprise(&e.id),
        json!({"name": d.name, "parentId": d.parent_id}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view(&state, d, &[]).await?)))
}

/// The whole tree, to anyone with a role in the enterprise.
#[utoipa::path(get, path = "/api/enterprises/{id}/departments", tag = "departments",
    params(("id" = String, Path)), responses((status = 200, description = "the department tree")))]
pub async fn tree(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<DepartmentView>>> {
    let e = enterprise(&state, &caller, &id, Action::View).await?;
    let groups = state.store.groups_of_enterprise(&e.id).await?;
    let mut flat = Vec::new();
    for d in state.store.departments(&e.id).await? {
        flat.push(view(&state, d, &groups).await?);
    }
    Ok(Json(nest(flat)))
}

#[utoipa::path(get, path = "/api/departments/{id}", tag = "departments",
    params(("id" = String, Path)), responses((status = 200, description = "the department")))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DepartmentView>> {
    let d = department(&state, &caller, &id, Action::View).await?;
    let groups = state.store.groups_of_enterprise(&d.enterprise_id).await?;
    Ok(Json(view(&state, d, &groups).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchDepartment {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    parent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    monthly_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double_option")]
    daily_token_budget: Option<Option<u64>>,
}

/// Its admins rename it; moving it and changing its budget need the level
/// above (enterprise staff, or an admin of an ancestor).
#[utoipa::path(patch, path = "/api/departments/{id}", tag = "departments",
    params(("id" = String, Path)), responses((status = 200, description = "the changed department")))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<PatchDepartment>,
) -> ApiResult<Json<DepartmentView>> {
    let above = body.parent_id.is_some()
        || body.monthly_budget_usd.is_some()
        || body.daily_token_budget.is_some();
    let action = if above { Action::Own } else { Action::Manage };
    let mut d = department(&state, &caller, &id, action).await?;
    if let Some(n) = &body.name {
        d.name = input::name("name", n)?;
    }
    if let Some(v) = body.monthly_budget_usd {
        d.budget.monthly_usd = budget_usd("monthlyBudgetUsd", v)?;
    }
    if let Some(v) = body.daily_token_budget {
        d.budget.daily_tokens = budget_tokens(v);
    }
    if let Some(parent) = body.parent_id {
        move_to(&state, &caller, &mut d, parent).await?;
    }
    state.store.update_department(&d).await?;
    if above {
        forget_budgets(&state, &d.enterprise_id).await?;
    }
    audit::record(
        &state,
        Some(caller.id()),
        "department.changed",
        ("department", &d.id),
        Scope::Enterprise(&d.enterprise_id),
        json!({"name": d.name, "parentId": d.parent_id, "monthlyBudgetUsd": d.budget.monthly_usd,
               "dailyTokenBudget": d.budget.daily_tokens}),
    )
    .await;
    let groups = state.store.groups_of_enterprise(&d.enterprise_id).await?;
    Ok(Json(view(&state, d, &groups).await?))
}

/// Re-parents `d`: same enterprise, not below itself, depth kept, and the
/// caller must manage the new parent (or the enterprise, for top level).
async fn move_to(
    state: &AppState,
    caller: &Caller,
    d: &mut Department,
    parent: Option<String>,
) -> ApiResult<()> {
    let tree = state.store.departments(&d.enterprise_id).await?;
    match &parent {
        None => {
            enterprise(state, caller, &d.enterprise_id, Action::Manage).await?;
        }
        Some(p) => {
            if !tree.iter().any(|x| &x.id == p) {
                return Err(ApiError::bad_request(format!(
                    "parentId: no department `{p}` in this enterprise"
                )));
            }
            if enterprise::is_within(&tree, p, &d.id) {
                return Err(ApiError::bad_request(
                    "parentId: a department cannot move below itself",
                ));
            }
            department(state, caller, p, Action::Manage).await?;
            let depth =
                enterprise::ancestry(&tree, p).len() + enterprise::subtree_height(&tree, &d.id);
            if depth > MAX_DEPARTMENT_DEPTH {
                return Err(ApiError::bad_request(format!(
                    "parentId: departments nest at most {MAX_DEPARTMENT_DEPTH} deep"
                )));
            }
        }
    }
    d.parent_id = parent;
    Ok(())
}

/// Only an empty department (no sub-departments, no groups) is deleted.
#[utoipa::path(delete, path = "/api/departments/{id}", tag = "departments",
    params(("id" = String, Path)), responses((status = 204, description = "deleted"),
        (status = 409, description = "it still has sub-departments or groups")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let d = department(&state, &caller, &id, Action::Own).await?;
    let children = state
        .store
        .departments(&d.enterprise_id)
        .await?
        .iter()
        .filter(|x| x.parent_id.as_deref() == Some(d.id.as_str()))
        .count();
    let groups = state
        .store
        .groups_of_enterprise(&d.enterprise_id)
        .await?
        .iter()
        .filter(|g| g.department_id.as_deref() == Some(d.id.as_str()))
        .count();
    if children > 0 || groups > 0 {
        return Err(ApiError::conflict(format!(
            "the department still has {children} sub-department(s) and {groups} group(s); move or delete them first"
        )));
    }
    state.store.delete_department(&d.id).await?;
    audit::record(
        &state,
        Some(caller.id()),
        "department.deleted",
        ("department", &d.id),
        Scope::Enterprise(&d.enterprise_id),
        json!({"name": d.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminRef {
    user_id: Option<String>,
    email: Option<String>,
}

/// Invites a department admin (`{userId|email}`); the level above
/// decides, and the person becomes admin once they accept (see
/// [`invitations::invite_person`]).
#[utoipa::path(post, path = "/api/departments/{id}/admins", tag = "departments",
    params(("id" = String, Path)),
    request_body(content = serde_json::Value, description = "{userId|email}"),
    responses((status = 202, description = "invited: `{invited, email|userId, role, expiresAt, url, token, emailSent}`, the same whether or not the email has an account"),
        (status = 409, description = "the user already administers the department")))]
pub async fn add_admin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ValidJson(body): ValidJson<AdminRef>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let d = department(&state, &caller, &id, Action::Own).await?;
    let invitee = Invitee::from_body(body.user_id.as_deref(), body.email.as_deref())?;
    let e = state
        .store
        .enterprise(&d.enterprise_id)
        .await?
        .ok_or_else(|| ApiError::not_found("department"))?;
    let target = InvitationTarget::Department {
        department_id: d.id.clone(),
    };
    invitations::invite_person(
        &state,
        &caller,
        Place::Department(d, e),
        target,
        invitee,
        "this user already administers the department",
    )
    .await
}

#[utoipa::path(delete, path = "/api/departments/{id}/admins/{user_id}", tag = "departments",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "no longer an admin of it")))]
pub async fn remove_admin(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let d = department(&state, &caller, &id, Action::Own).await?;
    state
        .store
        .remove_department_admin(&d.id, &user_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("department admin"),
            other => other.into(),
        })?;
    audit::record(
        &state,
        Some(caller.id()),
        "member.role_changed",
        ("user", &user_id),
        Scope::Enterprise(&d.enterprise_id),
        json!({"departmentId": d.id, "from": "department_admin"}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

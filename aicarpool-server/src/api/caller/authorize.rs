//! The one permission check of the management API.
//!
//! Every handler asks [`authorize`] whether the caller may take an
//! [`Action`] on a [`Resource`]. The answer combines every role the caller
//! holds on the resource's chain (system admin → enterprise owner/admin →
//! department admin of the department or an ancestor → group
//! owner/admin/member) into one effective role, and compares it with what
//! the action needs:
//!
//! | resource | view | manage | own (delete, budgets, admins) |
//! |---|---|---|---|
//! | enterprise | any role inside it | admin | owner |
//! | department | any role in the enterprise | its admin | enterprise admin, or admin of an ancestor |
//! | group | member | admin | owner |
//! | group account | group admin | group admin | group admin |
//! | pool account | enterprise admin, or admin of a group that binds it | enterprise admin | enterprise admin |
//!
//! A caller with no role at all gets 404 (the resource's existence is not
//! revealed); a caller whose role is too low gets 403.

use aicarpool_core::account::{Account, AccountOwner};
use aicarpool_core::enterprise::{self, Department, Enterprise, EnterpriseRole};
use aicarpool_core::id::is_valid_id;
use aicarpool_core::org::{Group, GroupRole};

use super::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read it.
    View,
    /// Change it, or manage what hangs off it (members, accounts, binding,
    /// invitations, others' keys, sub-departments).
    Manage,
    /// Delete it, set its budget, name its admins.
    Own,
}

/// What the action is taken on, by id.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Enterprise(&'a str),
    Department(&'a str),
    Group(&'a str),
    Account(&'a str),
}

impl Resource<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Resource::Enterprise(_) => "enterprise",
            Resource::Department(_) => "department",
            Resource::Group(_) => "group",
            Resource::Account(_) => "account",
        }
    }
}

/// The resource as loaded, so handlers need not read it again.
#[derive(Debug, Clone)]
pub enum Target {
    Enterprise(Enterprise),
    Department(Department),
    Group(Group),
    Account(Account),
}

/// A granted request: the caller's effective role and the resource.
#[derive(Debug, Clone)]
pub struct Access {
    /// The most powerful role the caller holds on the resource, on the
    /// owner > admin > member scale.
    pub role: GroupRole,
    pub target: Target,
}

/// The role an action needs on a loaded resource (see the module table).
fn needed(action: Action, target: &Target) -> GroupRole {
    match (target, action) {
        (Target::Account(a), _) if matches!(a.owner, AccountOwner::Group(_)) => GroupRole::Admin,
        (Target::Account(_), Action::View) => GroupRole::Admin,
        (Target::Account(_), _) => GroupRole::Owner,
        (_, Action::View) => GroupRole::Member,
        (_, Action::Manage) => GroupRole::Admin,
        (_, Action::Own) => GroupRole::Owner,
    }
}

/// The one check: loads the resource, works out the caller's effective
/// role on it and compares it with what `action` needs.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    action: Action,
    resource: Resource<'_>,
) -> ApiResult<Access> {
    let kind = resource.kind();
    let not_found = || ApiError::not_found(kind);
    let (role, target) = match resource {
        Resource::Enterprise(id) => {
            let e = load(id, state.store.enterprise(id))
                .await?
                .ok_or_else(not_found)?;
            (
                enterprise_role(state, caller, &e).await?,
                Target::Enterprise(e),
            )
        }
        Resource::Department(id) => {
            let d = load(id, state.store.department(id))
                .await?
                .ok_or_else(not_found)?;
            (
                department_role(state, caller, &d).await?,
                Target::Department(d),
            )
        }
        Resource::Group(id) => {
            let g = load(id, state.store.group(id))
                .await?
                .ok_or_else(not_found)?;
            (group_role(state, caller, &g).await?, Target::Group(g))
        }
        Resource::Account(id) => {
            let a = load(id, state.store.account(id))
                .await?
                .ok_or_else(not_found)?;
            (account_role(state, caller, &a).await?, Target::Account(a))
        }
    };
    let role = role.ok_or_else(not_found)?;
    let need = needed(action, &target);
    if caller.is_admin() || role <= need {
        return Ok(Access { role, target });
    }
    Err(ApiError::forbidden(format!(
        "this needs the {} role on the {kind}; you are {}",
        need.as_str(),
        role.as_str()
    )))
}

/// Reads a record by a path id; an id that cannot exist is not looked up.
async fn load<T>(
    id: &str,
    read: impl std::future::Future<Output = aicarpool_core::store::StoreResult<Option<T>>>,
) -> ApiResult<Option<T>> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    Ok(read.await?)
}

/// The more powerful of two optional roles.
fn strongest(a: Option<GroupRole>, b: Option<GroupRole>) -> Option<GroupRole> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Enterprise owner → owner, admin → admin (`None` when neither).
async fn enterprise_staff_role(
    state: &AppState,
    caller: &Caller,
    enterprise_id: &str,
) -> ApiResult<Option<GroupRole>> {
    if caller.is_admin() {
        return Ok(Some(GroupRole::Owner));
    }
    Ok(state
        .store
        .enterprise_member(enterprise_id, caller.id())
        .await?
        .map(|m| match m.role {
            EnterpriseRole::Owner => GroupRole::Owner,
            EnterpriseRole::Admin => GroupRole::Admin,
        }))
}

/// The departments of `enterprise_id` the caller administers directly.
async fn administered(
    state: &AppState,
    caller: &Caller,
    enterprise_id: &str,
) -> ApiResult<Vec<Department>> {
    Ok(state
        .store
        .departments_administered_by(caller.id())
        .await?
        .into_iter()
        .filter(|d| d.enterprise_id == enterprise_id)
        .collect())
}

/// Owner/admin of the enterprise as such; any other role inside it (a
/// department admin, a member of one of its groups) lets the caller see it.
pub async fn enterprise_role(
    state: &AppState,
    caller: &Caller,
    e: &Enterprise,
) -> ApiResult<Option<GroupRole>> {
    if let Some(r) = enterprise_staff_role(state, caller, &e.id).await? {
        return Ok(Some(r));
    }
    if !administered(state, caller, &e.id).await?.is_empty() {
        return Ok(Some(GroupRole::Member));
    }
    let in_a_group = state
        .store
        .groups_of_user(caller.id())
        .await?
        .iter()
        .any(|(g, _)| g.enterprise_id.as_deref() == Some(e.id.as_str()));
    Ok(in_a_group.then_some(GroupRole::Member))
}

/// Enterprise staff and admins of an ancestor own a department; its own
/// admins manage it; anyone else inside the enterprise sees it.
pub async fn department_role(
    state: &AppState,
    caller: &Caller,
    d: &Department,
) -> ApiResult<Option<GroupRole>> {
    if enterprise_staff_role(state, caller, &d.enterprise_id)
        .await?
        .is_some()
    {
        return Ok(Some(GroupRole::Owner));
    }
    let mine = administered(state, caller, &d.enterprise_id).await?;
    if !mine.is_empty() {
        let tree = state.store.departments(&d.enterprise_id).await?;
        let chain = enterprise::ancestry(&tree, &d.id);
        if mine.iter().any(|m| chain[1..].contains(&m.id.as_str())) {
            return Ok(Some(GroupRole::Owner));
        }
        if mine.iter().any(|m| m.id == d.id) {
            return Ok(Some(GroupRole::Admin));
        }
        return Ok(Some(GroupRole::Member));
    }
    let Some(e) = state.store.enterprise(&d.enterprise_id).await? else {
        return Ok(None);
    };
    enterprise_role(state, caller, &e).await
}

/// Whether the caller administers `department_id` or one of its ancestors.
async fn administers_department(
    state: &AppState,
    caller: &Caller,
    enterprise_id: &str,
    department_id: &str,
) -> ApiResult<bool> {
    let mine = administered(state, caller, enterprise_id).await?;
    if mine.is_empty() {
        return Ok(false);
    }
    let tree = state.store.departments(enterprise_id).await?;
    Ok(mine
        .iter()
        .any(|m| enterprise::is_within(&tree, department_id, &m.id)))
}

/// The member's own role, raised to owner for enterprise staff and to admin
/// for admins of the group's department (or an ancestor).
pub async fn group_role(
    state: &AppState,
    caller: &Caller,
    g: &Group,
) -> ApiResult<Option<GroupRole>> {
    if caller.is_admin() {
        return Ok(Some(GroupRole::Owner));
    }
    let mut role = state
        .store
        .membership(&g.id, caller.id())
        .await?
        .map(|m| m.role);
    if let Some(eid) = &g.enterprise_id {
        if enterprise_staff_role(state, caller, eid).await?.is_some() {
            return Ok(Some(GroupRole::Owner));
        }
        if let Some(did) = &g.department_id {
            if administers_department(state, caller, eid, did).await? {
                role = strongest(role, Some(GroupRole::Admin));
            }
        }
    }
    Ok(role)
}

/// A group account: the role in its group. A pool account: owner for
/// enterprise staff; admin (to see it, not change it) for admins of a group
/// that binds it.
pub async fn account_role(
    state: &AppState,
    caller: &Caller,
    a: &Account,
) -> ApiResult<Option<GroupRole>> {
    match &a.owner {
        AccountOwner::Group(gid) => match state.store.group(gid).await? {
            Some(g) => group_role(state, caller, &g).await,
            None => Ok(caller.is_admin().then_some(GroupRole::Owner)),
        },
        AccountOwner::Enterprise(eid) => {
            if enterprise_staff_role(state, caller, eid).await?.is_some() {
                return Ok(Some(GroupRole::Owner));
            }
            for (gid, _) in state.store.bindings_of_account(&a.id).await? {
                if let Some(g) = state.store.group(&gid).await? {
                    if group_role(state, caller, &g)
                        .await?
                        .is_some_and(|r| r <= GroupRole::Admin)
                    {
                        return Ok(Some(GroupRole::Admin));
                    }
                }
            }
            Ok(None)
        }
    }
}

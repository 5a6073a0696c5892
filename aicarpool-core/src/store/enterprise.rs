//! Storage traits of enterprise mode: enterprises and departments
//! ([`EnterpriseStore`]), the audit log and enterprise events
//! ([`AuditStore`]).

use async_trait::async_trait;

use super::StoreResult;
use crate::account::Account;
use crate::enterprise::{
    AuditEntry, AuditQuery, Department, DepartmentAdmin, Enterprise, EnterpriseEvent,
    EnterpriseMember, EnterpriseRole,
};
use crate::key::KeyRecord;
use crate::org::{Group, User};

/// Enterprises, their members, departments and department admins.
#[async_trait]
pub trait EnterpriseStore: Send + Sync {
    /// Creates the enterprise and its owner's membership together. Fails
    /// with `Conflict` when the id exists.
    async fn create_enterprise(
        &self,
        enterprise: &Enterprise,
        owner: &EnterpriseMember,
    ) -> StoreResult<()>;
    async fn enterprise(&self, id: &str) -> StoreResult<Option<Enterprise>>;
    /// Every enterprise, oldest first (system admins).
    async fn enterprises(&self) -> StoreResult<Vec<Enterprise>>;
    /// Fails with `NotFound` when the enterprise does not exist.
    async fn update_enterprise(&self, enterprise: &Enterprise) -> StoreResult<()>;
    /// Deletes the enterprise with its members, departments, department
    /// admins, events, pool accounts (and their binding entries) and groups
    /// (each as [`GroupStore::delete_group`](super::GroupStore::delete_group)
    /// would). Returns the member keys deleted with the groups, so caches
    /// can forget them. Audit entries stay: they are history.
    async fn delete_enterprise(&self, id: &str) -> StoreResult<Vec<KeyRecord>>;

    /// Adds the member or changes their role.
    async fn put_enterprise_member(&self, member: &EnterpriseMember) -> StoreResult<()>;
    async fn enterprise_member(
        &self,
        enterprise_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<EnterpriseMember>>;
    /// Members with their user records, oldest first.
    async fn enterprise_members(
        &self,
        enterprise_id: &str,
    ) -> StoreResult<Vec<(EnterpriseMember, User)>>;
    /// Fails with `NotFound` when the user holds no role there.
    async fn remove_enterprise_member(&self, enterprise_id: &str, user_id: &str)
        -> StoreResult<()>;
    /// The enterprises where `user_id` holds a role.
    async fn enterprises_of_user(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(Enterprise, EnterpriseRole)>>;

    /// Fails with `Conflict` when the id exists.
    async fn create_department(&self, department: &Department) -> StoreResult<()>;
    async fn department(&self, id: &str) -> StoreResult<Option<Department>>;
    /// Every department of the enterprise, oldest first (the flat tree).
    async fn departments(&self, enterprise_id: &str) -> StoreResult<Vec<Department>>;
    /// Fails with `NotFound` when the department does not exist.
    async fn update_department(&self, department: &Department) -> StoreResult<()>;
    /// Deletes the department and its admins. Callers check first that it
    /// has no sub-departments and no groups.
    async fn delete_department(&self, id: &str) -> StoreResult<()>;

    /// Fails with `Conflict` when the user already administers it.
    async fn add_department_admin(&self, admin: &DepartmentAdmin) -> StoreResult<()>;
    /// Fails with `NotFound` when the user does not administer it.
    async fn remove_department_admin(&self, department_id: &str, user_id: &str) -> StoreResult<()>;
    /// Admins of one department (not of its ancestors), oldest first.
    async fn department_admins(&self, department_id: &str) -> StoreResult<Vec<DepartmentAdmin>>;
    /// The departments `user_id` administers directly, in every enterprise.
    async fn departments_administered_by(&self, user_id: &str) -> StoreResult<Vec<Department>>;

    /// The groups of the enterprise, oldest first.
    async fn groups_of_enterprise(&self, enterprise_id: &str) -> StoreResult<Vec<Group>>;
    /// The enterprise's pool accounts (owner = the enterprise), oldest first.
    async fn accounts_of_enterprise(&self, enterprise_id: &str) -> StoreResult<Vec<Account>>;
}

/// The audit log and enterprise events. Both are append-only history.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Matching entries, newest first, at most `query.limit`.
    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;

    /// Records the event unless one with the same enterprise and
    /// `dedupe_key` exists; returns whether it was recorded.
    async fn record_event(&self, event: &EnterpriseEvent) -> StoreResult<bool>;
    /// The enterprise's events, newest first, at most `limit`.
    async fn events(&self, enterprise_id: &str, limit: u32) -> StoreResult<Vec<EnterpriseEvent>>;
}

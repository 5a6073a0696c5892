//! Enterprise mode in the in-memory store.

use async_trait::async_trait;

use super::MemoryStore;
use crate::account::{Account, AccountOwner};
use crate::enterprise::{
    self, AuditEntry, AuditQuery, Department, DepartmentAdmin, Enterprise, EnterpriseEvent,
    EnterpriseMember, EnterpriseRole,
};
use crate::key::KeyRecord;
use crate::org::{Group, InvitationTarget, User};
use crate::store::{AuditStore, EnterpriseStore, StoreError, StoreResult};
use crate::usage::UsageScope;

/// The enterprise tables, kept inside the store's one lock so cascades see
/// groups and accounts consistently.
#[derive(Debug, Default)]
pub(super) struct EnterpriseTables {
    pub(super) enterprises: Vec<Enterprise>,
    members: Vec<EnterpriseMember>,
    departments: Vec<Department>,
    department_admins: Vec<DepartmentAdmin>,
    audit: Vec<AuditEntry>,
    events: Vec<EnterpriseEvent>,
}

/// The groups a department or enterprise usage scope covers now; `None`
/// for the other scopes.
pub(super) fn groups_in_scope(
    t: &super::Tables,
    scope: &UsageScope,
) -> Option<std::collections::HashSet<String>> {
    let in_scope: Box<dyn Fn(&Group) -> bool> = match scope {
        UsageScope::Enterprise(e) => {
            let e = e.clone();
            Box::new(move |g: &Group| g.enterprise_id.as_ref() == Some(&e))
        }
        UsageScope::Department(d) => {
            let tree: Vec<Department> = t.ent.departments.clone();
            let d = d.clone();
            Box::new(move |g: &Group| {
                g.department_id
                    .as_deref()
                    .is_some_and(|gd| enterprise::is_within(&tree, gd, &d))
            })
        }
        _ => return None,
    };
    Some(
        t.groups
            .iter()
            .filter(|g| in_scope(g))
            .map(|g| g.id.clone())
            .collect(),
    )
}

#[async_trait]
impl EnterpriseStore for MemoryStore {
    async fn create_enterprise(
        &self,
        enterprise: &Enterprise,
        owner: &EnterpriseMember,
    ) -> StoreResult<()> {
        let mut t = self.t();
        if t.ent.enterprises.iter().any(|e| e.id == enterprise.id) {
            return Err(StoreError::Conflict("enterprise exists".into()));
        }
        t.ent.enterprises.push(enterprise.clone());
        t.ent.members.push(owner.clone());
        Ok(())
    }

    async fn enterprise(&self, id: &str) -> StoreResult<Option<Enterprise>> {
        Ok(self
            .t()
            .ent
            .enterprises
            .iter()
            .find(|e| e.id == id)
            .cloned())
    }

    async fn enterprises(&self) -> StoreResult<Vec<Enterprise>> {
        Ok(self.t().ent.enterprises.clone())
    }

    async fn update_enterprise(&self, enterprise: &Enterprise) -> StoreResult<()> {
        let mut t = self.t();
        let slot = t
            .ent
            .enterprises
            .iter_mut()
            .find(|e| e.id == enterprise.id)
            .ok_or(StoreError::NotFound)?;
        *slot = enterprise.clone();
        Ok(())
    }

    async fn delete_enterprise(&self, id: &str) -> StoreResult<Vec<KeyRecord>> {
        let mut t = self.t();
        let before = t.ent.enterprises.len();
        t.ent.enterprises.retain(|e| e.id != id);
        if t.ent.enterprises.len() == before {
            return Err(StoreError::NotFound);
        }
        t.ent.members.retain(|m| m.enterprise_id != id);
        t.alerts
            .remove_owner(&crate::alert::AlertOwner::Enterprise(id.to_owned()));
        let departments: Vec<String> = t
            .ent
            .departments
            .iter()
            .filter(|d| d.enterprise_id == id)
            .map(|d| d.id.clone())
            .collect();
        t.ent.departments.retain(|d| d.enterprise_id != id);
        t.ent
            .department_admins
            .retain(|a| !departments.contains(&a.department_id));
        t.invitations.retain(|i| match &i.target {
            InvitationTarget::Enterprise { enterprise_id, .. } => enterprise_id != id,
            InvitationTarget::Department { department_id } => !departments.contains(department_id),
            InvitationTarget::Group { .. } => true,
        });
        t.ent.events.retain(|e| e.enterprise_id != id);
        let groups: Vec<String> = t
            .groups
            .iter()
            .filter(|g| g.enterprise_id.as_deref() == Some(id))
            .map(|g| g.id.clone())
            .collect();
        let mut keys = Vec::new();
        for g in &groups {
            keys.extend(t.remove_group(g).unwrap_or_default());
        }
        let pool: Vec<String> = t
            .accounts
            .iter()
            .filter(|a| a.owner == AccountOwner::Enterprise(id.to_owned()))
            .map(|a| a.id.clone())
            .collect();
        t.remove_accounts(&pool);
        Ok(keys)
    }

    async fn put_enterprise_member(&self, member: &EnterpriseMember) -> StoreResult<()> {
        let mut t = self.t();
        // The durable stores refuse rows whose parents are missing.
        if !t
            .ent
            .enterprises
            .iter()
            .any(|e| e.id == member.enterprise_id)
            || !t.users.iter().any(|u| u.id == member.user_id)
        {
            return Err(StoreError::NotFound);
        }
        match t
            .ent
            .members
            .iter_mut()
            .find(|m| m.enterprise_id == member.enterprise_id && m.user_id == member.user_id)
        {
            Some(slot) => slot.role = member.role,
            None => t.ent.members.push(member.clone()),
        }
        Ok(())
    }

    async fn enterprise_member(
        &self,
        enterprise_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<EnterpriseMember>> {
        Ok(self
            .t()
            .ent
            .members
            .iter()
            .find(|m| m.enterprise_id == enterprise_id && m.user_id == user_id)
            .cloned())
    }

    async fn enterprise_members(
        &self,
        enterprise_id: &str,
    ) -> StoreResult<Vec<(EnterpriseMember, User)>> {
        let t = self.t();
        Ok(t.ent
            .members
            .iter()
            .filter(|m| m.enterprise_id == enterprise_id)
            .filter_map(|m| {
                t.users
                    .iter()
                    .find(|u| u.id == m.user_id)
                    .map(|u| (m.clone(), u.clone()))
            })
            .collect())
    }

    async fn remove_enterprise_member(
        &self,
        enterprise_id: &str,
        user_id: &str,
    ) -> StoreResult<()> {
        let mut t = self.t();
        let before = t.ent.members.len();
        t.ent
            .members
            .retain(|m| !(m.enterprise_id == enterprise_id && m.user_id == user_id));
        if t.ent.members.len() == before {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn enterprises_of_user(
        &self,
        user_id: &str,
    ) -> StoreResult<Vec<(Enterprise, EnterpriseRole)>> {
        let t = self.t();
        Ok(t.ent
            .members
            .iter()
            .filter(|m| m.user_id == user_id)
            .filter_map(|m| {
                t.ent
                    .enterprises
                    .iter()
                    .find(|e| e.id == m.enterprise_id)
                    .map(|e| (e.clone(), m.role))
            })
            .collect())
    }

    async fn create_department(&self, department: &Department) -> StoreResult<()> {
        let mut t = self.t();
        if t.ent.departments.iter().any(|d| d.id == department.id) {
            return Err(StoreError::Conflict("department exists".into()));
        }
        if !t
            .ent
            .enterprises
            .iter()
            .any(|e| e.id == department.enterprise_id)
        {
            return Err(StoreError::NotFound);
        }
        t.ent.departments.push(department.clone());
        Ok(())
    }

    async fn department(&self, id: &str) -> StoreResult<Option<Department>> {
        Ok(self
            .t()
            .ent
            .departments
            .iter()
            .find(|d| d.id == id)
            .cloned())
    }

    async fn departments(&self, enterprise_id: &str) -> StoreResult<Vec<Department>> {
        Ok(self
            .t()
            .ent
            .departments
            .iter()
            .filter(|d| d.enterprise_id == enterprise_id)
            .cloned()
            .collect())
    }

    async fn update_department(&self, department: &Department) -> StoreResult<()> {
        let mut t = self.t();
        let slot = t
            .ent
            .departments
            .iter_mut()
            .find(|d| d.id == department.id)
            .ok_or(StoreError::NotFound)?;
        *slot = department.clone();
        Ok(())
    }

    async fn delete_department(&self, id: &str) -> StoreResult<()> {
        let mut t = self.t();
        let before = t.ent.departments.len();
        t.ent.departments.retain(|d| d.id != id);
        if t.ent.departments.len() == before {
            return Err(StoreError::NotFound);
        }
        t.ent.department_admins.retain(|a| a.department_id != id);
        t.invitations.retain(|i| {
            !matches!(&i.target, InvitationTarget::Department { department_id } if department_id == id)
        });
        Ok(())
    }

    async fn add_department_admin(&self, admin: &DepartmentAdmin) -> StoreResult<()> {
        let mut t = self.t();
        if t.ent
            .department_admins
            .iter()
            .any(|a| a.department_id == admin.department_id && a.user_id == admin.user_id)
        {
            return Err(StoreError::Conflict("already a department admin".into()));
        }
        if !t
            .ent
            .departments
            .iter()
            .any(|d| d.id == admin.department_id)
            || !t.users.iter().any(|u| u.id == admin.user_id)
        {
            return Err(StoreError::NotFound);
        }
        t.ent.department_admins.push(admin.clone());
        Ok(())
    }

    async fn remove_department_admin(&self, department_id: &str, user_id: &str) -> StoreResult<()> {
        let mut t = self.t();
        let before = t.ent.department_admins.len();
        t.ent
            .department_admins
            .retain(|a| !(a.department_id == department_id && a.user_id == user_id));
        if t.ent.department_admins.len() == before {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn department_admins(&self, department_id: &str) -> StoreResult<Vec<DepartmentAdmin>> {
        Ok(self
            .t()
            .ent
            .department_admins
            .iter()
            .filter(|a| a.department_id == department_id)
            .cloned()
            .collect())
    }

    async fn departments_administered_by(&self, user_id: &str) -> StoreResult<Vec<Department>> {
        let t = self.t();
        Ok(t.ent
            .department_admins
            .iter()
            .filter(|a| a.user_id == user_id)
            .filter_map(|a| {
                t.ent
                    .departments
                    .iter()
                    .find(|d| d.id == a.department_id)
                    .cloned()
            })
            .collect())
    }

    async fn groups_of_enterprise(&self, enterprise_id: &str) -> StoreResult<Vec<Group>> {
        Ok(self
            .t()
            .groups
            .iter()
            .filter(|g| g.enterprise_id.as_deref() == Some(enterprise_id))
            .cloned()
            .collect())
    }

    async fn accounts_of_enterprise(&self, enterprise_id: &str) -> StoreResult<Vec<Account>> {
        let owner = AccountOwner::Enterprise(enterprise_id.to_owned());
        Ok(self
            .t()
            .accounts
            .iter()
            .filter(|a| a.owner == owner)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut t = self.t();
        if t.ent.audit.iter().any(|e| e.id == entry.id) {
            return Err(StoreError::Conflict("audit entry exists".into()));
        }
        t.ent.audit.push(entry.clone());
        Ok(())
    }

    async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let t = self.t();
        let mut out: Vec<AuditEntry> = t
            .ent
            .audit
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        // Newest first; insertion order breaks ties (later = newer).
        out.reverse();
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        out.truncate(query.limit as usize);
        Ok(out)
    }

    async fn record_event(&self, event: &EnterpriseEvent) -> StoreResult<bool> {
        let mut t = self.t();
        if !t
            .ent
            .enterprises
            .iter()
            .any(|e| e.id == event.enterprise_id)
        {
            return Err(StoreError::NotFound);
        }
        if t.ent
            .events
            .iter()
            .any(|e| e.enterprise_id == event.enterprise_id && e.dedupe_key == event.dedupe_key)
        {
            return Ok(false);
        }
        t.ent.events.push(event.clone());
        Ok(true)
    }

    async fn events(&self, enterprise_id: &str, limit: u32) -> StoreResult<Vec<EnterpriseEvent>> {
        let t = self.t();
        let mut out: Vec<EnterpriseEvent> = t
            .ent
            .events
            .iter()
            .filter(|e| e.enterprise_id == enterprise_id)
            .cloned()
            .collect();
        out.reverse();
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        out.truncate(limit as usize);
        Ok(out)
    }
}

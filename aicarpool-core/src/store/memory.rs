//! The in-memory store: the default for embedding and for tests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AccountStore, GroupStore, HealthCheck, KeyStore, RequestLogStore, StoreError, StoreResult,
    UsageStore, UserStore,
};
use crate::account::{Account, AccountOwner};
use crate::binding::Binding;
use crate::key::{KeyHash, KeyRecord};
use crate::org::{Group, GroupRole, Invitation, Membership, Session, User};
use crate::usage::{
    log_order, RequestPage, RequestQuery, RollupKey, UsageFact, UsageQuery, UsageRecord,
    UsageReport, UsageRollup,
};

mod alerts;
mod credentials;
mod enterprise;
mod fares;

#[derive(Debug, Default)]
struct Tables {
    users: Vec<User>,
    sessions: HashMap<String, Session>,
    groups: Vec<Group>,
    memberships: Vec<Membership>,
    invitations: Vec<Invitation>,
    accounts: Vec<Account>,
    bindings: HashMap<String, Binding>,
    keys: Vec<KeyRecord>,
    usage: Vec<UsageRecord>,
    /// Ids in `usage`, so a retried batch is skipped in O(1) per record.
    usage_ids: std::collections::HashSet<String>,
    /// What retention left of older records.
    rollups: std::collections::BTreeMap<RollupKey, UsageRollup>,
    alerts: alerts::AlertTables,
    fares: fares::FareTables,
    ent: enterprise::EnterpriseTables,
}

impl Tables {
    /// Removes a group with everything that hangs off it (memberships,
    /// invitations, binding, keys, the accounts it owns and their binding
    /// entries elsewhere); returns its keys, or `None` when it is absent.
    fn remove_group(&mut self, id: &str) -> Option<Vec<KeyRecord>> {
        let before = self.groups.len();
        self.groups.retain(|g| g.id != id);
        if self.groups.len() == before {
            return None;
        }
        self.memberships.retain(|m| m.group_id != id);
        self.fares.remove_group(id);
        self.alerts
            .remove_owner(&crate::alert::AlertOwner::Group(id.to_owned()));
        self.invitations.retain(|i| i.target.group_id() != Some(id));
        self.bindings.remove(id);
        let (gone, kept) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|k| k.group_id == id);
        self.keys = kept;
        let owned: Vec<String> = self
            .accounts
            .iter()
            .filter(|a| a.owner == AccountOwner::Group(id.to_owned()))
            .map(|a| a.id.clone())
            .collect();
        self.remove_accounts(&owned);
        Some(gone)
    }

    /// Removes accounts and their entries in every binding.
    fn remove_accounts(&mut self, ids: &[String]) {
        self.accounts.retain(|a| !ids.contains(&a.id));
        for id in ids {
            self.fares.remove_account(id);
        }
        for b in self.bindings.values_mut() {
            b.accounts.retain(|a| !ids.contains(&a.account_id));
        }
    }
}

/// Keeps everything in process memory; lost on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// Credential refresh leases: account id → (holder, until).
    leases: credentials::Leases,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every usage record, in insertion order (for inspection and tests).
    pub fn usage_records(&self) -> Vec<UsageRecord> {
        self.t().usage.clone()
    }

    fn t(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let mut t = self.t();
        if t.users
            .iter()
            .any(|u| u.id == user.id || u.email == user.email)
        {
            return Err(StoreError::Conflict("user exists".into()));
        }
        t.users.push(user.clone());
        Ok(())
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self.t().users.iter().find(|u| u.id == id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_lowercase();
        Ok(self.t().users.iter().find(|u| u.email == email).cloned())
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let mut users = self.t().users.clone();
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users)
    }

    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.t().users.len() as u64)
    }

    async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        let mut t = self.t();
        let user = t
            .users
            .iter_mut()
            .find(|u| u.id == user_id)
            .ok_or(StoreError::NotFound)?;
        password_hash.clone_into(&mut user.password_hash);
        Ok(())
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.t()
            .sessions
            .insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        Ok(self.t().sessions.get(token_hash).cloned())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        self.t().sessions.remove(token_hash);
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        let mut t = self.t();
        let before = t.sessions.len();
        t.sessions
            .retain(|hash, s| s.user_id != user_id || Some(hash.as_str()) == keep);
        Ok((before - t.sessions.len()) as u64)
    }
}

#[async_trait]
impl GroupStore for MemoryStore {
    async fn create_group(&self, group: &Group, owner: &Membership) -> StoreResult<()> {
        let mut t = self.t();
        if t.groups.iter().any(|g| g.id == group.id) {
            return Err(StoreError::Conflict("group exists".into()));
        }
        t.groups.push(group.clone());
        t.memberships.push(owner.clone());
        Ok(())
    }

    async fn group(&self, id: &str) -> StoreResult<Option<Group>> {
        Ok(self.t().groups.iter().find(|g| g.id == id).cloned())
    }

    async fn groups(&self) -> StoreResult<Vec<Group>> {
        Ok(self.t().groups.clone())
    }

    async fn update_group(&self, group: &Group) -> StoreResult<()> {
        let mut t = self.t();
        let slot = t
            .groups
            .iter_mut()
            .find(|g| g.id == group.id)
            .ok_or(StoreError::NotFound)?;
        *slot = group.clone();
        Ok(())
    }

    async fn delete_group(&self, id: &str) -> StoreResult<()> {
        self.t()
            .remove_group(id)
            .map(drop)
            .ok_or(StoreError::NotFound)
    }

    async fn groups_of_user(&self, user_id: &str) -> StoreResult<Vec<(Group, GroupRole)>> {
        let t = self.t();
        Ok(t.memberships
            .iter()
            .filter(|m| m.user_id == user_id)
            .filter_map(|m| {
                t.groups
                    .iter()
                    .find(|g| g.id == m.group_id)
                    .map(|g| (g.clone(), m.role))
            })
            .collect())
    }

    async fn add_member(
        &self,
        membership: &Membership,
        max_members: Option<u32>,
    ) -> StoreResult<()> {
        // Checked and pushed under one lock: concurrent joins see each other.
        let mut t = self.t();
        let mut count = 0usize;
        for m in t
            .memberships
            .iter()
            .filter(|m| m.group_id == membership.group_id)
        {
            if m.user_id == membership.user_id {
                return Err(StoreError::Conflict("already a member".into()));
            }
            count += 1;
        }
        if let Some(max) = max_members {
            if count >= max as usize {
                return Err(StoreError::LimitReached(format!(
                    "the group has {max} members"
                )));
            }
        }
        t.memberships.push(membership.clone());
        Ok(())
    }

    async fn membership(&self, group_id: &str, user_id: &str) -> StoreResult<Option<Membership>> {
        Ok(self
            .t()
            .memberships
            .iter()
            .find(|m| m.group_id == group_id && m.user_id == user_id)
            .cloned())
    }

    async fn members(&self, group_id: &str) -> StoreResult<Vec<(Membership, User)>> {
        let t = self.t();
        Ok(t.memberships
            .iter()
            .filter(|m| m.group_id == group_id)
            .filter_map(|m| {
                t.users
                    .iter()
                    .find(|u| u.id == m.user_id)
                    .map(|u| (m.clone(), u.clone()))
            })
            .collect())
    }

    async fn update_member(&self, membership: &Membership) -> StoreResult<()> {
        let mut t = self.t();
        let m = t
            .memberships
            .iter_mut()
            .find(|m| m.group_id == membership.group_id && m.user_id == membership.user_id)
            .ok_or(StoreError::NotFound)?;
        m.role = membership.role;
        m.share_weight = membership.share_weight;
        Ok(())
    }

    async fn remove_member(&self, group_id: &str, user_id: &str) -> StoreResult<Vec<KeyRecord>> {
        let mut t = self.t();
        let before = t.memberships.len();
        t.memberships
            .retain(|m| !(m.group_id == group_id && m.user_id == user_id));
        if t.memberships.len() == before {
            return Err(StoreError::NotFound);
        }
        let (gone, kept) = std::mem::take(&mut t.keys)
            .into_iter()
            .partition(|k| k.group_id == group_id && k.user_id == user_id);
        t.keys = kept;
        Ok(gone)
    }

    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()> {
        self.t().invitations.push(invitation.clone());
        Ok(())
    }

    async fn invitation_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Invitation>> {
        Ok(self
            .t()
            .invitations
            .iter()
            .find(|i| i.token_hash == token_hash)
            .cloned())
    }

    async fn use_invitation(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut t = self.t();
        let inv = t
            .invitations
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(StoreError::NotFound)?;
        if !inv.is_open(now) {
            return Ok(false);
        }
        inv.uses += 1;
        Ok(true)
    }

    async fn release_invitation_use(&self, id: &str) -> StoreResult<()> {
        if let Some(inv) = self.t().invitations.iter_mut().find(|i| i.id == id) {
            inv.uses = inv.uses.saturating_sub(1);
        }
        Ok(())
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_account(&self, account: &Account) -> StoreResult<()> {
        let mut t = self.t();
        if t.accounts.iter().any(|a| a.id == account.id) {
            return Err(StoreError::Conflict("account exists".into()));
        }
        t.accounts.push(account.clone());
        Ok(())
    }

    async fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        Ok(self.t().accounts.iter().find(|a| a.id == id).cloned())
    }

    async fn accounts_of_group(&self, group_id: &str) -> StoreResult<Vec<Account>> {
        let owner = AccountOwner::Group(group_id.to_owned());
        Ok(self
            .t()
            .accounts
            .iter()
            .filter(|a| a.owner == owner)
            .cloned()
            .collect())
    }

    async fn update_account(&self, account: &Account) -> StoreResult<()> {
        let mut t = self.t();
        let slot = t
            .accounts
            .iter_mut()
            .find(|a| a.id == account.id)
            .ok_or(StoreError::NotFound)?;
        *slot = account.clone();
        Ok(())
    }

    async fn delete_account(&self, id: &str) -> StoreResult<()> {
        let mut t = self.t();
        let before = t.accounts.len();
        t.accounts.retain(|a| a.id != id);
        if t.accounts.len() == before {
            return Err(StoreError::NotFound);
        }
        for b in t.bindings.values_mut() {
            b.accounts.retain(|a| a.account_id != id);
        }
        t.fares.remove_account(id);
        Ok(())
    }

    async fn put_binding(&self, binding: &Binding) -> StoreResult<()> {
        self.t()
            .bindings
            .insert(binding.group_id.clone(), binding.clone());
        Ok(())
    }

    async fn binding(&self, group_id: &str) -> StoreResult<Option<Binding>> {
        Ok(self.t().bindings.get(group_id).cloned())
    }

    async fn bindings_of_account(&self, account_id: &str) -> StoreResult<Vec<(String, bool)>> {
        let t = self.t();
        let mut out: Vec<(String, bool)> = t
            .bindings
            .values()
            .flat_map(|b| {
                b.accounts
                    .iter()
                    .filter(|a| a.account_id == account_id)
                    .map(|a| (b.group_id.clone(), a.dedicated))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn create_key(&self, key: &KeyRecord) -> StoreResult<()> {
        let mut t = self.t();
        if key.key_hash.is_none() {
            return Err(StoreError::Backend("key without hash".into()));
        }
        if t.keys
            .iter()
            .any(|k| k.id == key.id || k.key_hash == key.key_hash)
        {
            return Err(StoreError::Conflict("key exists".into()));
        }
        t.keys.push(key.clone());
        Ok(())
    }

    async fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        Ok(self.t().keys.iter().find(|k| k.id == id).cloned())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        Ok(self
            .t()
            .keys
            .iter()
            .find(|k| k.key_hash.as_ref() == Some(hash))
            .cloned())
    }

    async fn keys_of_group(
        &self,
        group_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<KeyRecord>> {
        Ok(self
            .t()
            .keys
            .iter()
            .filter(|k| k.group_id == group_id && user_id.is_none_or(|u| k.user_id == u))
            .cloned()
            .collect())
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<()> {
        let mut t = self.t();
        let slot = t
            .keys
            .iter_mut()
            .find(|k| k.id == key.id)
            .ok_or(StoreError::NotFound)?;
        *slot = key.clone();
        Ok(())
    }

    async fn delete_key(&self, id: &str) -> StoreResult<()> {
        let mut t = self.t();
        let before = t.keys.len();
        t.keys.retain(|k| k.id != id);
        if t.keys.len() == before {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

#[async_trait]
impl UsageStore for MemoryStore {
    async fn insert_usage(&self, records: &[UsageRecord]) -> StoreResult<()> {
        let mut t = self.t();
        for r in records {
            if t.usage_ids.insert(r.id.clone()) {
                t.usage.push(r.clone());
            }
        }
        Ok(())
    }

    async fn usage_report(&self, query: &UsageQuery) -> StoreResult<UsageReport> {
        let t = self.t();
        let facts = t
            .usage
            .iter()
            .map(|r| r as &dyn UsageFact)
            .chain(t.rollups.values().map(|r| r as &dyn UsageFact));
        Ok(match enterprise::groups_in_scope(&t, &query.scope) {
            Some(groups) => query.aggregate_where(facts, |r| groups.contains(r.group_id())),
            None => query.aggregate(facts),
        })
    }
}

#[async_trait]
impl RequestLogStore for MemoryStore {
    async fn requests(&self, query: &RequestQuery) -> StoreResult<RequestPage> {
        let t = self.t();
        let scope = UsageQuery {
            scope: query.scope.clone(),
            from: None,
            to: None,
            group_by: None,
        };
        let groups = enterprise::groups_in_scope(&t, &query.scope);
        let mut rows: Vec<UsageRecord> = t
            .usage
            .iter()
            .filter(|r| match &groups {
                Some(g) => g.contains(&r.group_id),
                None => scope.matches(*r),
            })
            .filter(|r| query.keeps(r))
            .cloned()
            .collect();
        log_order(&mut rows);
        rows.truncate(query.page_size() + 1);
        Ok(query.page(rows))
    }

    async fn roll_up_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut t = self.t();
        let (old, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut t.usage)
            .into_iter()
            .partition(|r| r.at < before);
        t.usage = kept;
        for r in &old {
            t.usage_ids.remove(&r.id);
        }
        UsageRollup::fold(&mut t.rollups, &old);
        Ok(old.len() as u64)
    }
}

#[async_trait]
impl HealthCheck for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}

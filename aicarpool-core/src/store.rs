//! Storage traits and the in-memory implementation.
//!
//! Each trait covers one kind of record, so a backend (or a test double)
//! implements only what it needs and a handler asks only for what it uses.
//! [`Store`] bundles them for servers that keep everything in one database.
//! The conformance suite in [`crate::testing`] (feature `testing`) runs the
//! same checks against every backend.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::Account;
use crate::binding::Binding;
use crate::key::{KeyHash, KeyRecord};
use crate::org::{Group, GroupRole, Invitation, Membership, Session, User};
use crate::usage::{
    RequestPage, RequestQuery, UsageQuery, UsageRecord, UsageReport, UsageScope, UsageTotals,
};

mod alerts;
mod credentials;
mod enterprise;
mod fares;
mod memory;

pub use alerts::AlertStore;
pub use credentials::{CredentialStore, StoreCredentials};
pub use enterprise::{AuditStore, EnterpriseStore};
pub use fares::{sort_fare_use, FareStore, FareUseScope};
pub use memory::MemoryStore;

/// Errors a store reports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (duplicate email, id, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A size limit would be exceeded (a full group, …).
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// The backend failed (I/O, connection, corrupt row).
    #[error("storage backend: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Users and login sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict` when the id or the email exists.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, id: &str) -> StoreResult<Option<User>>;
    /// `email` is compared lower-cased.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Every user, oldest first (operators' `admin list-users`).
    async fn users(&self) -> StoreResult<Vec<User>>;
    async fn count_users(&self) -> StoreResult<u64>;
    /// Replaces the user's password hash. Fails with `NotFound` when the
    /// user does not exist.
    async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()>;

    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    async fn session(&self, token_hash: &str) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Deletes every session of `user_id` except the one whose hash is
    /// `keep` (a password change keeps its caller signed in); returns how
    /// many were deleted.
    async fn delete_user_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64>;
}

/// Groups, memberships and invitations.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates the group and its owner's membership together.
    async fn create_group(&self, group: &Group, owner: &Membership) -> StoreResult<()>;
    async fn group(&self, id: &str) -> StoreResult<Option<Group>>;
    /// Every group (system admins).
    async fn groups(&self) -> StoreResult<Vec<Group>>;
    /// Fails with `NotFound` when the group does not exist.
    async fn update_group(&self, group: &Group) -> StoreResult<()>;
    /// Deletes the group with its memberships, invitations, binding and keys.
    async fn delete_group(&self, id: &str) -> StoreResult<()>;

    /// The groups `user_id` belongs to, with the role held in each.
    async fn groups_of_user(&self, user_id: &str) -> StoreResult<Vec<(Group, GroupRole)>>;
    /// Adds the membership unless the group already has `max_members`
    /// members (the owner counts), checked and inserted atomically so
    /// concurrent joins cannot overfill the group. Fails with `Conflict`
    /// when the user is already a member, else with `LimitReached` when the
    /// group is full.
    async fn add_member(
        &self,
        membership: &Membership,
        max_members: Option<u32>,
    ) -> StoreResult<()>;
    async fn membership(&self, group_id: &str, user_id: &str) -> StoreResult<Option<Membership>>;
    /// Members with their user records, oldest first.
    async fn members(&self, group_id: &str) -> StoreResult<Vec<(Membership, User)>>;
    /// Writes a membership's role and share weight.
    async fn update_member(&self, membership: &Membership) -> StoreResult<()>;
    /// Removes the membership and deletes that member's keys in the group;
    /// returns the deleted keys (so caches can be invalidated).
    async fn remove_member(&self, group_id: &str, user_id: &str) -> StoreResult<Vec<KeyRecord>>;

    async fn create_invitation(&self, invitation: &Invitation) -> StoreResult<()>;
    async fn invitation_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Invitation>>;
    /// Atomically counts one use if the invitation is still open at `now`;
    /// returns whether it was.
    async fn use_invitation(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Gives back one use counted by `use_invitation`, for a join refused
    /// after it; never below zero, and a no-op for an unknown id.
    async fn release_invitation_use(&self, id: &str) -> StoreResult<()>;
}

/// Upstream accounts and group bindings.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn create_account(&self, account: &Account) -> StoreResult<()>;
    async fn account(&self, id: &str) -> StoreResult<Option<Account>>;
    /// Accounts owned by a group (carpool mode), oldest first.
    async fn accounts_of_group(&self, group_id: &str) -> StoreResult<Vec<Account>>;
    /// Fails with `NotFound` when the account does not exist.
    async fn update_account(&self, account: &Account) -> StoreResult<()>;
    /// Deletes the account and removes it from every binding.
    async fn delete_account(&self, id: &str) -> StoreResult<()>;

    /// Replaces the group's binding.
    async fn put_binding(&self, binding: &Binding) -> StoreResult<()>;
    async fn binding(&self, group_id: &str) -> StoreResult<Option<Binding>>;
    /// Every (group id, dedicated) pair that binds `account_id`.
    async fn bindings_of_account(&self, account_id: &str) -> StoreResult<Vec<(String, bool)>>;
}

/// Member keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// `key.key_hash` must be set. Fails with `Conflict` on a duplicate hash.
    async fn create_key(&self, key: &KeyRecord) -> StoreResult<()>;
    async fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>>;
    /// The lookup of the data plane.
    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>>;
    /// Keys of a group, optionally only one user's, oldest first.
    async fn keys_of_group(
        &self,
        group_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<KeyRecord>>;
    /// Replaces every field, the hash included (rotation).
    async fn update_key(&self, key: &KeyRecord) -> StoreResult<()>;
    async fn delete_key(&self, id: &str) -> StoreResult<()>;
}

/// Usage records and reports.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Inserts a batch in one transaction; a record whose id exists is
    /// skipped, so a retried batch is not counted twice.
    async fn insert_usage(&self, records: &[UsageRecord]) -> StoreResult<()>;
    async fn usage_report(&self, query: &UsageQuery) -> StoreResult<UsageReport>;

    /// The sums of `scope`'s records at or after each instant of `since`,
    /// in order: what rebuilding limit counters after a restart needs
    /// (day, week, month and total in one call). Backends that can should
    /// answer in one query; this default asks one report per instant.
    async fn usage_since(
        &self,
        scope: &UsageScope,
        since: &[DateTime<Utc>],
    ) -> StoreResult<Vec<UsageTotals>> {
        let mut out = Vec::with_capacity(since.len());
        for from in since {
            let query = UsageQuery {
                scope: scope.clone(),
                from: Some(*from),
                to: None,
                group_by: None,
            };
            out.push(self.usage_report(&query).await?.totals);
        }
        Ok(out)
    }
}

/// The request log: records read back a page at a time, and the
/// retention that folds old ones into hourly rollups.
#[async_trait]
pub trait RequestLogStore: Send + Sync {
    /// The records of the query's scope that pass its filters, newest
    /// first (ties by id, descending), one page.
    async fn requests(&self, query: &RequestQuery) -> StoreResult<RequestPage>;

    /// Adds every record older than `before` to the rollup of its hour,
    /// key, account and model (see [`crate::usage::UsageRollup`]) and
    /// deletes it, in one transaction, so every report sums the same
    /// before and after. Returns how many records were folded.
    async fn roll_up_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Liveness of the backend, for `/readyz`.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
}

/// Everything a server keeps, in one backend.
pub trait Store:
    UserStore
    + GroupStore
    + AccountStore
    + KeyStore
    + UsageStore
    + RequestLogStore
    + AlertStore
    + FareStore
    + EnterpriseStore
    + AuditStore
    + CredentialStore
    + HealthCheck
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: UserStore
        + GroupStore
        + AccountStore
        + KeyStore
        + UsageStore
        + RequestLogStore
        + AlertStore
        + FareStore
        + EnterpriseStore
        + AuditStore
        + CredentialStore
        + HealthCheck
        + std::fmt::Debug
{
}

/// A shared handle to a store.
pub type DynStore = Arc<dyn Store>;

//! The storage conformance suite (feature `testing`).
//!
//! Every backend runs [`run_all`] from its own tests, so the in-memory store
//! and the durable ones keep one contract. Each check creates its rows under
//! fresh ids ([`new_id`]) and only looks at those, so the suite can run again
//! and again against one database, even alongside other runs.
//!
//! Timestamps in fixtures are whole milliseconds ([`now_ms`]): a backend may
//! keep time at millisecond precision and still round-trip every record.
//!
//! A backend's tests call it with a store of that backend:
//!
//! ```
//! # async fn conformance() {
//! use aicarpool_core::store::MemoryStore;
//!
//! aicarpool_core::testing::run_all(&MemoryStore::new()).await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod alerts;
mod credentials;
mod enterprise;
pub mod fair;
mod fares;
mod groups;
mod keys;
pub mod limiter;
mod request_log;
mod usage;
mod usage_since;
mod users;

pub use accounts::{accounts, bindings};
pub use alerts::alerts;
pub use credentials::{credential_leases, credentials_swap};
pub use enterprise::{
    audit_log, delete_enterprise_cascades, department, departments, enterprise,
    enterprise_groups_and_pool, enterprise_member, enterprises, events, role_invitations,
    setup_enterprise, usage_by_organization,
};
pub use fares::{closed_statements, fare_use, fees};
pub use groups::{
    groups, invitations, invitations_concurrent, members, members_concurrent, members_limit,
};
pub use keys::{delete_group_cascades, keys};
pub use request_log::{request_log, request_log_retention};
pub use usage::{usage, usage_record};
pub use usage_since::usage_since;
pub use users::{password_hash, ping, sessions, user_sessions, users};

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::account::{Account, AccountOwner, Platform, Preset};
use crate::binding::{Binding, BindingMode, BoundAccount};
use crate::id::new_id;
use crate::key::{KeyRecord, MemberKey, Service};
use crate::limits::{KeyLimits, WindowAmounts};
use crate::org::{Group, GroupRole, Invitation, InvitationTarget, Membership, Session, User};
use crate::secret::Sealed;
use crate::store::{Store, StoreError, StoreResult};
use crate::usage::{
    Accuracy, RefusalReason, Usage, UsageGroupBy, UsageQuery, UsageRecord, UsageScope,
};

/// Runs every check of the suite, one area after the other.
pub async fn run_all<S: Store + ?Sized>(store: &S) {
    ping(store).await;
    users(store).await;
    sessions(store).await;
    user_sessions(store).await;
    password_hash(store).await;
    groups(store).await;
    members(store).await;
    members_limit(store).await;
    members_concurrent(store).await;
    invitations(store).await;
    invitations_concurrent(store).await;
    accounts(store).await;
    bindings(store).await;
    keys(store).await;
    delete_group_cascades(store).await;
    usage(store).await;
    usage_since(store).await;
    request_log(store).await;
    request_log_retention(store).await;
    enterprises(store).await;
    departments(store).await;
    role_invitations(store).await;
    enterprise_groups_and_pool(store).await;
    delete_enterprise_cascades(store).await;
    audit_log(store).await;
    events(store).await;
    usage_by_organization(store).await;
    credentials_swap(store).await;
    credential_leases(store).await;
    alerts(store).await;
    fees(store).await;
    fare_use(store).await;
    closed_statements(store).await;
}

// ---------------------------------------------------------------- fixtures

/// The current time truncated to whole milliseconds.
pub fn now_ms() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("time in range")
}

/// A user with a fresh id and a matching lower-case email.
pub fn user() -> User {
    let id = new_id();
    User {
        email: format!("{}@example.test", id.to_lowercase()),
        id,
        name: "Åsa Carpooler 🚗".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        is_system_admin: false,
        created_at: now_ms(),
    }
}

/// Limits with every field set, including a float that only survives an
/// exact round trip.
pub fn full_limits() -> KeyLimits {
    KeyLimits {
        requests_per_minute: 60,
        tokens_per_minute: 1 << 40,
        concurrency: 3,
        tokens: WindowAmounts {
            daily: 1_000_000,
            weekly: 5_000_000,
            monthly: 20_000_000,
            total: u64::MAX >> 12,
        },
        cost_usd: WindowAmounts {
            daily: 0.1 + 0.2,
            weekly: 12.5,
            monthly: 1e-7,
            total: 123_456.789,
        },
        per_member: None,
        queue: Some(crate::limits::QueueLimits {
            max_waiting: 7,
            max_wait_ms: 45_000,
        }),
    }
}

/// A group created by `owner`, with every optional field set.
pub fn group(owner: &str) -> Group {
    Group {
        id: new_id(),
        name: "Platform team".into(),
        enterprise_id: Some(new_id()),
        department_id: Some(new_id()),
        max_members: Some(12),
        limits: KeyLimits {
            per_member: Some(Box::new(KeyLimits {
                concurrency: 2,
                ..full_limits()
            })),
            ..full_limits()
        },
        fair_share: crate::carpool::FairShare {
            enabled: false,
            engage_at: 0.75,
        },
        fare_split: crate::carpool::FareSplit { equal_part: 0.25 },
        created_by: owner.to_owned(),
        created_at: now_ms(),
    }
}

pub fn membership(group_id: &str, user_id: &str, role: GroupRole) -> Membership {
    Membership {
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        role,
        share_weight: 1,
        joined_at: now_ms(),
    }
}

/// An account with every optional field set and credentials holding every
/// byte value.
pub fn account(owner: AccountOwner) -> Account {
    let now = now_ms();
    Account {
        id: new_id(),
        name: "Kimi relay".into(),
        platform: Platform::AnthropicCompatible,
        preset: Some(Preset::Kimi),
        base_url: Some("https://relay.example.test/anthropic".into()),
        owner,
        models: vec!["claude-sonnet-*".into(), "kimi-k2".into()],
        model_map: BTreeMap::from([
            ("claude-sonnet-4-5".into(), "kimi-k2-turbo".into()),
            ("claude-opus-4-1".into(), "kimi-k2".into()),
        ]),
        serves: Vec::new(),
        priority: -5,
        weight: 7,
        max_concurrency: Some(4),
        proxy: Some("socks5://127.0.0.1:1080".into()),
        enabled: false,
        credentials: Sealed((0..=255u8).rev().collect()),
        created_at: now,
        updated_at: now + Duration::milliseconds(1),
    }
}

/// A member key record with a fresh hash and every field set; returns the
/// key too, for lookups by hash.
pub fn key(group_id: &str, user_id: &str) -> KeyRecord {
    let mk = MemberKey::generate(group_id, user_id);
    let now = now_ms();
    KeyRecord {
        id: new_id(),
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        name: "laptop".into(),
        key_hash: Some(mk.hash()),
        hint: mk.hint(),
        enabled: true,
        expires_at: Some(now + Duration::days(30)),
        services: vec![Service::Claude, Service::Gemini, Service::Openai],
        models: vec!["claude-sonnet-*".into()],
        clients: vec!["claude-cli/*".into()],
        limits: full_limits(),
        created_at: now,
        updated_at: now,
    }
}

pub fn invitation(group_id: &str, created_by: &str, max_uses: Option<u32>) -> Invitation {
    let now = now_ms();
    Invitation {
        id: new_id(),
        target: InvitationTarget::Group {
            group_id: group_id.to_owned(),
            role: GroupRole::Member,
        },
        token_hash: MemberKey::generate("inv", "inv").hash().to_hex(),
        email: Some("invitee@example.test".into()),
        max_uses,
        uses: 0,
        expires_at: now + Duration::days(7),
        created_by: created_by.to_owned(),
        created_at: now,
    }
}

/// Creates a fresh user and a group owned by them.
pub async fn setup_group<S: Store + ?Sized>(store: &S) -> (User, Group) {
    let owner = user();
    store.create_user(&owner).await.unwrap();
    let g = group(&owner.id);
    store
        .create_group(&g, &membership(&g.id, &owner.id, GroupRole::Owner))
        .await
        .unwrap();
    (owner, g)
}

/// Creates a fresh user and adds them to `group_id` with `role`.
pub async fn add_user<S: Store + ?Sized>(store: &S, group_id: &str, role: GroupRole) -> User {
    let u = user();
    store.create_user(&u).await.unwrap();
    store
        .add_member(&membership(group_id, &u.id, role), None)
        .await
        .unwrap();
    u
}

#[track_caller]
fn expect_conflict<T: Debug>(r: StoreResult<T>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "{what}: expected Conflict, got {r:?}"
    );
}

#[track_caller]
fn expect_limit<T: Debug>(r: StoreResult<T>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::LimitReached(_))),
        "{what}: expected LimitReached, got {r:?}"
    );
}

#[track_caller]
fn expect_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::NotFound)),
        "{what}: expected NotFound, got {r:?}"
    );
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn ids(keys: &[KeyRecord]) -> Vec<String> {
    sorted(keys.iter().map(|k| k.id.clone()).collect())
}

// ------------------------------------------------------------------ checks

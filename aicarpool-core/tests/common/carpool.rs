//! The start of every gateway test world: a member who owns a carpool
//! group, in an in-memory store, its accounts, binding and keys.
#![allow(dead_code)]

use std::time::Duration;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform};
use aicarpool_core::binding::{Binding, BindingMode, BoundAccount};
use aicarpool_core::gateway::GatewayConfig;
use aicarpool_core::id::new_id;
use aicarpool_core::key::{KeyRecord, MemberKey, Service};
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::org::{Group, GroupRole, Membership, User};
use aicarpool_core::secret::Sealer;
use aicarpool_core::store::{AccountStore, GroupStore, MemoryStore, UserStore};
use aicarpool_core::usage::UsageWriterConfig;

/// Creates a user and a carpool group they own, with the group `limits`.
pub async fn owner_and_group(store: &MemoryStore, limits: KeyLimits) -> (User, Group) {
    let now = chrono::Utc::now();
    let user = User {
        id: new_id(),
        email: format!("{}@example.com", new_id().to_lowercase()),
        name: "Member".into(),
        password_hash: String::new(),
        is_system_admin: false,
        created_at: now,
    };
    store.create_user(&user).await.unwrap();
    let group = Group {
        id: new_id(),
        name: "carpool".into(),
        enterprise_id: None,
        department_id: None,
        max_members: None,
        limits,
        fair_share: Default::default(),
        fare_split: Default::default(),
        created_by: user.id.clone(),
        created_at: now,
    };
    let owner = Membership {
        group_id: group.id.clone(),
        user_id: user.id.clone(),
        role: GroupRole::Owner,
        share_weight: aicarpool_core::carpool::DEFAULT_SHARE_WEIGHT,
        joined_at: now,
    };
    store.create_group(&group, &owner).await.unwrap();
    (user, group)
}

/// An enabled account of the group at `base_url`, first in priority, with
/// `credentials` sealed for it; callers adjust the rest before storing it.
pub fn group_account(
    sealer: &Sealer,
    group_id: &str,
    platform: Platform,
    base_url: &str,
    credentials: &Credentials,
) -> Account {
    let id = new_id();
    let now = chrono::Utc::now();
    Account {
        name: "main".into(),
        platform,
        preset: None,
        base_url: Some(base_url.to_owned()),
        owner: AccountOwner::Group(group_id.to_owned()),
        models: vec![],
        model_map: Default::default(),
        serves: Vec::new(),
        priority: 10,
        weight: 1,
        max_concurrency: None,
        proxy: None,
        enabled: true,
        credentials: sealer.seal(&id, credentials).unwrap(),
        created_at: now,
        updated_at: now,
        id,
    }
}

/// An upstream API key, as the mock upstreams expect it.
pub fn api_key(key: &str) -> Credentials {
    Credentials {
        api_key: Some(key.to_owned()),
        ..Default::default()
    }
}

/// Binds the accounts to the group, dedicated, in their own priority.
pub async fn bind_dedicated(store: &MemoryStore, group_id: &str, account_ids: &[String]) {
    store
        .put_binding(&Binding {
            group_id: group_id.to_owned(),
            mode: BindingMode::Dedicated,
            accounts: account_ids
                .iter()
                .map(|id| BoundAccount {
                    account_id: id.clone(),
                    priority: None,
                    weight: None,
                    dedicated: true,
                })
                .collect(),
        })
        .await
        .unwrap();
}

/// A new key of the member for every service, not yet stored: the secret
/// and its record.
pub fn member_key(
    group_id: &str,
    user_id: &str,
    name: &str,
    limits: KeyLimits,
) -> (String, KeyRecord) {
    let now = chrono::Utc::now();
    let key = MemberKey::generate(group_id, user_id);
    let record = KeyRecord {
        id: new_id(),
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        key_hash: Some(key.hash()),
        hint: key.hint(),
        enabled: true,
        expires_at: None,
        services: Service::ALL.to_vec(),
        models: vec![],
        clients: vec![],
        limits,
        created_at: now,
        updated_at: now,
    };
    (key.expose(), record)
}

/// What gateway tests run with: short timeouts and a writer that flushes
/// within moments.
pub fn gateway_config() -> GatewayConfig {
    GatewayConfig {
        idle_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(10),
        usage_writer: UsageWriterConfig {
            flush_interval: Duration::from_millis(20),
            ..Default::default()
        },
        ..Default::default()
    }
}

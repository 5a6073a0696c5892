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

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::account::{Account, AccountOwner, Platform, Preset};
use crate::binding::{Binding, BindingMode, BoundAccount};
use crate::id::new_id;
use crate::key::{KeyRecord, MemberKey, Service};
use crate::limits::{KeyLimits, WindowAmounts};
use crate::org::{Group, GroupRole, Invitation, Membership, Session, User};
use crate::secret::Sealed;
use crate::store::{Store, StoreError, StoreResult};
use crate::usage::{Accuracy, Usage, UsageGroupBy, UsageQuery, UsageRecord, UsageScope};

/// Runs every check of the suite, one area after the other.
pub async fn run_all<S: Store + ?Sized>(store: &S) {
    ping(store).await;
    users(store).await;
    sessions(store).await;
    groups(store).await;
    members(store).await;
    invitations(store).await;
    invitations_concurrent(store).await;
    accounts(store).await;
    bindings(store).await;
    keys(store).await;
    delete_group_cascades(store).await;
    usage(store).await;
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
        limits: full_limits(),
        created_by: owner.to_owned(),
        created_at: now_ms(),
    }
}

pub fn membership(group_id: &str, user_id: &str, role: GroupRole) -> Membership {
    Membership {
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        role,
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
        group_id: group_id.to_owned(),
        token_hash: MemberKey::generate("inv", "inv").hash().to_hex(),
        email: Some("invitee@example.test".into()),
        role: GroupRole::Member,
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
        .add_member(&membership(group_id, &u.id, role))
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

pub async fn ping<S: Store + ?Sized>(store: &S) {
    store.ping().await.unwrap();
}

/// Round trip, lookups by id and by email (case-insensitive), conflicts.
pub async fn users<S: Store + ?Sized>(store: &S) {
    let before = store.count_users().await.unwrap();
    let mut u = user();
    u.is_system_admin = true;
    store.create_user(&u).await.unwrap();
    let plain = user();
    store.create_user(&plain).await.unwrap();

    assert_eq!(store.user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(store.user(&plain.id).await.unwrap(), Some(plain.clone()));
    assert_eq!(
        store.user_by_email(&u.email.to_uppercase()).await.unwrap(),
        Some(u.clone()),
        "email lookup ignores case"
    );
    assert_eq!(store.user(&new_id()).await.unwrap(), None);
    let nobody = format!("{}@example.test", new_id().to_lowercase());
    assert_eq!(store.user_by_email(&nobody).await.unwrap(), None);
    assert!(store.count_users().await.unwrap() >= before + 2);

    let mut same_id = user();
    same_id.id = u.id.clone();
    expect_conflict(store.create_user(&same_id).await, "duplicate user id");
    let mut same_email = user();
    same_email.email = u.email.clone();
    expect_conflict(store.create_user(&same_email).await, "duplicate email");
    assert_eq!(store.user(&u.id).await.unwrap(), Some(u));
    assert_eq!(store.user(&same_email.id).await.unwrap(), None);
}

/// Sessions are found by token hash until deleted; deleting twice is fine.
pub async fn sessions<S: Store + ?Sized>(store: &S) {
    let u = user();
    store.create_user(&u).await.unwrap();
    let now = now_ms();
    let s = Session {
        token_hash: MemberKey::generate("s", "s").hash().to_hex(),
        user_id: u.id.clone(),
        created_at: now,
        expires_at: now + Duration::hours(12),
    };
    store.create_session(&s).await.unwrap();
    assert_eq!(store.session(&s.token_hash).await.unwrap(), Some(s.clone()));
    assert_eq!(store.session(&new_id()).await.unwrap(), None);
    store.delete_session(&s.token_hash).await.unwrap();
    assert_eq!(store.session(&s.token_hash).await.unwrap(), None);
    store.delete_session(&s.token_hash).await.unwrap();
}

/// Group round trip (all and no optional fields), listing, update, conflicts.
pub async fn groups<S: Store + ?Sized>(store: &S) {
    let (owner, g) = setup_group(store).await;
    assert_eq!(store.group(&g.id).await.unwrap(), Some(g.clone()));
    assert_eq!(
        store
            .membership(&g.id, &owner.id)
            .await
            .unwrap()
            .map(|m| m.role),
        Some(GroupRole::Owner),
        "the owner's membership is created with the group"
    );

    let bare = Group {
        id: new_id(),
        name: String::new(),
        enterprise_id: None,
        department_id: None,
        max_members: None,
        limits: KeyLimits::default(),
        created_by: owner.id.clone(),
        created_at: now_ms() + Duration::milliseconds(1),
    };
    store
        .create_group(&bare, &membership(&bare.id, &owner.id, GroupRole::Owner))
        .await
        .unwrap();
    assert_eq!(store.group(&bare.id).await.unwrap(), Some(bare.clone()));

    let all = store.groups().await.unwrap();
    assert!(all.contains(&g) && all.contains(&bare));
    let mine = store.groups_of_user(&owner.id).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.contains(&(g.clone(), GroupRole::Owner)));
    assert!(mine.contains(&(bare.clone(), GroupRole::Owner)));

    expect_conflict(
        store
            .create_group(&g, &membership(&g.id, &owner.id, GroupRole::Owner))
            .await,
        "duplicate group id",
    );

    let mut changed = bare.clone();
    changed.name = "renamed".into();
    changed.enterprise_id = Some(new_id());
    changed.max_members = Some(0);
    changed.limits = full_limits();
    store.update_group(&changed).await.unwrap();
    assert_eq!(store.group(&bare.id).await.unwrap(), Some(changed));
    let mut cleared = g.clone();
    cleared.department_id = None;
    cleared.max_members = None;
    cleared.limits = KeyLimits::default();
    store.update_group(&cleared).await.unwrap();
    assert_eq!(store.group(&g.id).await.unwrap(), Some(cleared));

    let mut missing = group(&owner.id);
    missing.id = new_id();
    expect_not_found(store.update_group(&missing).await, "update missing group");
    expect_not_found(
        store.delete_group(&missing.id).await,
        "delete missing group",
    );
    assert_eq!(store.group(&missing.id).await.unwrap(), None);
    assert!(store.groups_of_user(&new_id()).await.unwrap().is_empty());
}

/// Memberships: add, conflicts, listing oldest first, roles, removal with
/// the member's keys.
pub async fn members<S: Store + ?Sized>(store: &S) {
    let (owner, g) = setup_group(store).await;
    let alice = user();
    let bob = user();
    store.create_user(&alice).await.unwrap();
    store.create_user(&bob).await.unwrap();
    let t0 = now_ms() + Duration::seconds(1);
    let ma = Membership {
        joined_at: t0,
        ..membership(&g.id, &alice.id, GroupRole::Member)
    };
    let mb = Membership {
        joined_at: t0 + Duration::milliseconds(1),
        ..membership(&g.id, &bob.id, GroupRole::Admin)
    };
    store.add_member(&ma).await.unwrap();
    store.add_member(&mb).await.unwrap();
    expect_conflict(store.add_member(&ma).await, "duplicate membership");

    assert_eq!(
        store.membership(&g.id, &alice.id).await.unwrap(),
        Some(ma.clone())
    );
    assert_eq!(store.membership(&g.id, &new_id()).await.unwrap(), None);
    let mo = store.membership(&g.id, &owner.id).await.unwrap().unwrap();
    assert_eq!(
        store.members(&g.id).await.unwrap(),
        vec![
            (mo, owner.clone()),
            (ma.clone(), alice.clone()),
            (mb.clone(), bob.clone()),
        ],
        "members oldest first, with their users"
    );
    assert!(store.members(&new_id()).await.unwrap().is_empty());

    store
        .set_member_role(&g.id, &alice.id, GroupRole::Admin)
        .await
        .unwrap();
    assert_eq!(
        store.groups_of_user(&alice.id).await.unwrap(),
        vec![(g.clone(), GroupRole::Admin)]
    );
    expect_not_found(
        store
            .set_member_role(&g.id, &new_id(), GroupRole::Admin)
            .await,
        "role of a non-member",
    );

    let mut a1 = key(&g.id, &alice.id);
    let mut a2 = key(&g.id, &alice.id);
    a1.created_at = t0;
    a2.created_at = t0 + Duration::milliseconds(1);
    let b1 = key(&g.id, &bob.id);
    for k in [&a1, &a2, &b1] {
        store.create_key(k).await.unwrap();
    }
    let removed = store.remove_member(&g.id, &alice.id).await.unwrap();
    assert_eq!(ids(&removed), ids(&[a1.clone(), a2.clone()]));
    assert!(
        removed.contains(&a1) && removed.contains(&a2),
        "full records"
    );
    assert_eq!(store.membership(&g.id, &alice.id).await.unwrap(), None);
    assert!(store.groups_of_user(&alice.id).await.unwrap().is_empty());
    assert_eq!(
        store.key_by_hash(&a1.key_hash.unwrap()).await.unwrap(),
        None
    );
    assert_eq!(store.key(&a2.id).await.unwrap(), None);
    assert_eq!(
        store.keys_of_group(&g.id, None).await.unwrap(),
        vec![b1.clone()]
    );
    assert_eq!(store.user(&alice.id).await.unwrap(), Some(alice.clone()));
    expect_not_found(store.remove_member(&g.id, &alice.id).await, "remove twice");

    let none = store.remove_member(&g.id, &bob.id).await.unwrap();
    assert_eq!(none, vec![b1]);
    assert_eq!(store.members(&g.id).await.unwrap().len(), 1);
}

/// Invitations: lookup by token hash, use counting, max uses, expiry.
pub async fn invitations<S: Store + ?Sized>(store: &S) {
    let (owner, g) = setup_group(store).await;
    let now = now_ms();

    let twice = invitation(&g.id, &owner.id, Some(2));
    store.create_invitation(&twice).await.unwrap();
    assert_eq!(
        store
            .invitation_by_token_hash(&twice.token_hash)
            .await
            .unwrap(),
        Some(twice.clone())
    );
    assert_eq!(
        store.invitation_by_token_hash(&new_id()).await.unwrap(),
        None
    );
    assert!(store.use_invitation(&twice.id, now).await.unwrap());
    assert!(store.use_invitation(&twice.id, now).await.unwrap());
    assert!(
        !store.use_invitation(&twice.id, now).await.unwrap(),
        "max uses reached"
    );
    let after = store
        .invitation_by_token_hash(&twice.token_hash)
        .await
        .unwrap();
    assert_eq!(after.map(|i| i.uses), Some(2));

    let open = Invitation {
        email: None,
        role: GroupRole::Admin,
        ..invitation(&g.id, &owner.id, None)
    };
    store.create_invitation(&open).await.unwrap();
    assert_eq!(
        store
            .invitation_by_token_hash(&open.token_hash)
            .await
            .unwrap(),
        Some(open.clone())
    );
    for _ in 0..3 {
        assert!(
            store.use_invitation(&open.id, now).await.unwrap(),
            "unlimited"
        );
    }
    assert!(
        !store
            .use_invitation(&open.id, open.expires_at)
            .await
            .unwrap(),
        "closed at its expiry instant"
    );
    assert!(!store
        .use_invitation(&open.id, open.expires_at + Duration::seconds(1))
        .await
        .unwrap());
    let after = store
        .invitation_by_token_hash(&open.token_hash)
        .await
        .unwrap();
    assert_eq!(after.map(|i| i.uses), Some(3));

    let expired = Invitation {
        expires_at: now - Duration::seconds(1),
        ..invitation(&g.id, &owner.id, Some(10))
    };
    store.create_invitation(&expired).await.unwrap();
    assert!(!store.use_invitation(&expired.id, now).await.unwrap());
    let after = store
        .invitation_by_token_hash(&expired.token_hash)
        .await
        .unwrap();
    assert_eq!(after.map(|i| i.uses), Some(0));

    expect_not_found(
        store.use_invitation(&new_id(), now).await,
        "unknown invitation",
    );
}

/// Twenty concurrent uses of an invitation with five uses: exactly five win.
pub async fn invitations_concurrent<S: Store + ?Sized>(store: &S) {
    let (owner, g) = setup_group(store).await;
    let inv = invitation(&g.id, &owner.id, Some(5));
    store.create_invitation(&inv).await.unwrap();
    let now = now_ms();
    let results =
        futures::future::join_all((0..20).map(|_| store.use_invitation(&inv.id, now))).await;
    let won = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|&w| w)
        .count();
    assert_eq!(won, 5, "uses never exceed max_uses");
    let after = store
        .invitation_by_token_hash(&inv.token_hash)
        .await
        .unwrap();
    assert_eq!(after.map(|i| i.uses), Some(5));
}

/// Accounts: every field and enum value round-trips; listing; update; delete.
pub async fn accounts<S: Store + ?Sized>(store: &S) {
    let (_, g) = setup_group(store).await;
    let owner = AccountOwner::Group(g.id.clone());
    let t0 = now_ms();

    let full = Account {
        created_at: t0,
        ..account(owner.clone())
    };
    let minimal = Account {
        id: new_id(),
        name: String::new(),
        platform: Platform::ClaudeApi,
        preset: None,
        base_url: None,
        models: Vec::new(),
        model_map: BTreeMap::new(),
        priority: 0,
        weight: 0,
        max_concurrency: None,
        proxy: None,
        enabled: true,
        credentials: Sealed::default(),
        created_at: t0 + Duration::milliseconds(1),
        ..account(owner.clone())
    };
    let enterprise = account(AccountOwner::Enterprise(new_id()));
    for a in [&full, &minimal, &enterprise] {
        store.create_account(a).await.unwrap();
        assert_eq!(store.account(&a.id).await.unwrap().as_ref(), Some(a));
    }

    let platforms = [
        Platform::ClaudeOauth,
        Platform::ClaudeApi,
        Platform::AnthropicCompatible,
        Platform::Gemini,
        Platform::OpenaiCompatible,
    ];
    let presets = [
        None,
        Some(Preset::Kimi),
        Some(Preset::Qwen),
        Some(Preset::Glm),
        Some(Preset::Deepseek),
        Some(Preset::Custom),
    ];
    let mut owned = vec![full.clone(), minimal.clone()];
    // Every platform and every preset, so each enum value round-trips.
    for (i, preset) in presets.into_iter().enumerate() {
        let a = Account {
            platform: platforms[i % platforms.len()],
            preset,
            created_at: t0 + Duration::milliseconds(2 + i as i64),
            ..account(owner.clone())
        };
        store.create_account(&a).await.unwrap();
        assert_eq!(store.account(&a.id).await.unwrap(), Some(a.clone()));
        owned.push(a);
    }

    assert_eq!(
        store.accounts_of_group(&g.id).await.unwrap(),
        owned,
        "group-owned accounts, oldest first; enterprise accounts excluded"
    );
    assert!(store.accounts_of_group(&new_id()).await.unwrap().is_empty());
    expect_conflict(store.create_account(&full).await, "duplicate account id");

    let mut changed = full.clone();
    changed.name = "renamed".into();
    changed.platform = Platform::Gemini;
    changed.preset = None;
    changed.base_url = None;
    changed.models = vec!["gemini-*".into()];
    changed.model_map = BTreeMap::from([("a".into(), "b".into())]);
    changed.priority = 9;
    changed.weight = 1;
    changed.max_concurrency = None;
    changed.proxy = None;
    changed.enabled = true;
    changed.credentials = Sealed(vec![0, 1, 0, 2]);
    changed.updated_at = t0 + Duration::minutes(5);
    store.update_account(&changed).await.unwrap();
    assert_eq!(store.account(&full.id).await.unwrap(), Some(changed));
    let mut back = minimal.clone();
    back.base_url = Some("http://localhost:8080".into());
    back.max_concurrency = Some(0);
    back.credentials = Sealed(vec![7; 4096]);
    store.update_account(&back).await.unwrap();
    assert_eq!(store.account(&minimal.id).await.unwrap(), Some(back));

    let ghost = account(owner);
    expect_not_found(store.update_account(&ghost).await, "update missing account");
    assert_eq!(store.account(&ghost.id).await.unwrap(), None);
    store.delete_account(&enterprise.id).await.unwrap();
    assert_eq!(store.account(&enterprise.id).await.unwrap(), None);
    expect_not_found(store.delete_account(&enterprise.id).await, "delete twice");
}

fn bound(account_id: &str, dedicated: bool) -> BoundAccount {
    BoundAccount {
        account_id: account_id.to_owned(),
        priority: None,
        weight: None,
        dedicated,
    }
}

/// Bindings: replace, read back in order, reverse lookup, account deletion.
pub async fn bindings<S: Store + ?Sized>(store: &S) {
    let (_, g1) = setup_group(store).await;
    let (_, g2) = setup_group(store).await;
    let a1 = account(AccountOwner::Group(g1.id.clone()));
    let a2 = account(AccountOwner::Enterprise(new_id()));
    let a3 = account(AccountOwner::Enterprise(new_id()));
    for a in [&a1, &a2, &a3] {
        store.create_account(a).await.unwrap();
    }
    assert_eq!(store.binding(&g1.id).await.unwrap(), None);

    let b1 = Binding {
        group_id: g1.id.clone(),
        mode: BindingMode::Hybrid,
        accounts: vec![
            BoundAccount {
                priority: Some(-1),
                weight: Some(3),
                ..bound(&a1.id, true)
            },
            bound(&a2.id, false),
        ],
    };
    let b2 = Binding {
        group_id: g2.id.clone(),
        mode: BindingMode::Shared,
        accounts: vec![bound(&a3.id, false), bound(&a2.id, false)],
    };
    store.put_binding(&b1).await.unwrap();
    store.put_binding(&b2).await.unwrap();
    assert_eq!(store.binding(&g1.id).await.unwrap(), Some(b1.clone()));
    assert_eq!(
        store.binding(&g2.id).await.unwrap(),
        Some(b2.clone()),
        "order kept"
    );
    assert_eq!(
        sorted(store.bindings_of_account(&a2.id).await.unwrap()),
        sorted(vec![(g1.id.clone(), false), (g2.id.clone(), false)])
    );
    assert_eq!(
        store.bindings_of_account(&a1.id).await.unwrap(),
        vec![(g1.id.clone(), true)]
    );

    let replaced = Binding {
        group_id: g1.id.clone(),
        mode: BindingMode::Dedicated,
        accounts: vec![bound(&a3.id, true)],
    };
    store.put_binding(&replaced).await.unwrap();
    assert_eq!(store.binding(&g1.id).await.unwrap(), Some(replaced));
    assert!(store.bindings_of_account(&a1.id).await.unwrap().is_empty());
    assert_eq!(
        sorted(store.bindings_of_account(&a3.id).await.unwrap()),
        sorted(vec![(g1.id.clone(), true), (g2.id.clone(), false)])
    );

    store.delete_account(&a3.id).await.unwrap();
    assert!(store.bindings_of_account(&a3.id).await.unwrap().is_empty());
    assert_eq!(
        store.binding(&g1.id).await.unwrap().map(|b| b.accounts),
        Some(vec![]),
        "the binding stays, without the deleted account"
    );
    assert_eq!(
        store.binding(&g2.id).await.unwrap().map(|b| b.accounts),
        Some(vec![bound(&a2.id, false)])
    );

    let empty = Binding {
        group_id: g2.id.clone(),
        mode: BindingMode::Shared,
        accounts: vec![],
    };
    store.put_binding(&empty).await.unwrap();
    assert_eq!(store.binding(&g2.id).await.unwrap(), Some(empty));
    assert_eq!(store.binding(&new_id()).await.unwrap(), None);
    assert!(store
        .bindings_of_account(&new_id())
        .await
        .unwrap()
        .is_empty());
}

/// Keys: round trip, lookups, listing with and without a user, conflicts,
/// rotation and deletion.
pub async fn keys<S: Store + ?Sized>(store: &S) {
    let (_, g) = setup_group(store).await;
    let alice = add_user(store, &g.id, GroupRole::Member).await;
    let bob = add_user(store, &g.id, GroupRole::Member).await;
    let t0 = now_ms();
    let k1 = KeyRecord {
        created_at: t0,
        ..key(&g.id, &alice.id)
    };
    let k2 = KeyRecord {
        name: String::new(),
        enabled: false,
        expires_at: None,
        services: vec![],
        models: vec![],
        clients: vec![],
        limits: KeyLimits::default(),
        created_at: t0 + Duration::milliseconds(1),
        updated_at: t0 + Duration::milliseconds(2),
        ..key(&g.id, &alice.id)
    };
    let k3 = KeyRecord {
        services: vec![Service::Openai],
        created_at: t0 + Duration::milliseconds(2),
        ..key(&g.id, &bob.id)
    };
    for k in [&k1, &k2, &k3] {
        store.create_key(k).await.unwrap();
        assert_eq!(store.key(&k.id).await.unwrap().as_ref(), Some(k));
        let by_hash = store.key_by_hash(&k.key_hash.unwrap()).await.unwrap();
        assert_eq!(by_hash.as_ref(), Some(k));
    }
    assert_eq!(
        store.keys_of_group(&g.id, None).await.unwrap(),
        vec![k1.clone(), k2.clone(), k3.clone()],
        "oldest first"
    );
    assert_eq!(
        store.keys_of_group(&g.id, Some(&alice.id)).await.unwrap(),
        vec![k1.clone(), k2.clone()]
    );
    assert_eq!(
        store.keys_of_group(&g.id, Some(&bob.id)).await.unwrap(),
        vec![k3.clone()]
    );
    assert!(store
        .keys_of_group(&g.id, Some(&new_id()))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .keys_of_group(&new_id(), None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.key(&new_id()).await.unwrap(), None);
    let stranger = MemberKey::generate(&g.id, &alice.id).hash();
    assert_eq!(store.key_by_hash(&stranger).await.unwrap(), None);

    let same_hash = KeyRecord {
        id: new_id(),
        ..k1.clone()
    };
    expect_conflict(store.create_key(&same_hash).await, "duplicate key hash");
    let same_id = KeyRecord {
        id: k1.id.clone(),
        ..key(&g.id, &alice.id)
    };
    expect_conflict(store.create_key(&same_id).await, "duplicate key id");
    let no_hash = KeyRecord {
        key_hash: None,
        ..key(&g.id, &alice.id)
    };
    assert!(
        store.create_key(&no_hash).await.is_err(),
        "a key needs a hash"
    );
    assert_eq!(store.key(&no_hash.id).await.unwrap(), None);

    let rotated_key = MemberKey::generate(&g.id, &alice.id);
    let rotated = KeyRecord {
        name: "rotated".into(),
        key_hash: Some(rotated_key.hash()),
        hint: rotated_key.hint(),
        enabled: false,
        expires_at: None,
        services: vec![Service::Gemini],
        models: vec![],
        clients: vec!["codex/*".into(), "gemini-cli/*".into()],
        limits: KeyLimits {
            concurrency: 1,
            ..KeyLimits::default()
        },
        updated_at: t0 + Duration::hours(1),
        ..k1.clone()
    };
    store.update_key(&rotated).await.unwrap();
    assert_eq!(store.key(&k1.id).await.unwrap(), Some(rotated.clone()));
    assert_eq!(
        store.key_by_hash(&k1.key_hash.unwrap()).await.unwrap(),
        None,
        "the old hash no longer finds the key"
    );
    assert_eq!(
        store.key_by_hash(&rotated_key.hash()).await.unwrap(),
        Some(rotated.clone())
    );
    let ghost = key(&g.id, &alice.id);
    expect_not_found(store.update_key(&ghost).await, "update missing key");
    assert_eq!(store.key(&ghost.id).await.unwrap(), None);

    store.delete_key(&k2.id).await.unwrap();
    assert_eq!(store.key(&k2.id).await.unwrap(), None);
    assert_eq!(
        store.key_by_hash(&k2.key_hash.unwrap()).await.unwrap(),
        None
    );
    expect_not_found(store.delete_key(&k2.id).await, "delete twice");
    assert_eq!(
        store.keys_of_group(&g.id, None).await.unwrap(),
        vec![rotated, k3]
    );
}

/// Deleting a group takes its memberships, invitations, binding, keys and
/// group-owned accounts (also out of other groups' bindings) with it.
pub async fn delete_group_cascades<S: Store + ?Sized>(store: &S) {
    let (owner, g) = setup_group(store).await;
    let member = add_user(store, &g.id, GroupRole::Member).await;
    let h = group(&owner.id);
    store
        .create_group(&h, &membership(&h.id, &owner.id, GroupRole::Owner))
        .await
        .unwrap();

    let own = account(AccountOwner::Group(g.id.clone()));
    let pool = account(AccountOwner::Enterprise(new_id()));
    let h_own = account(AccountOwner::Group(h.id.clone()));
    for a in [&own, &pool, &h_own] {
        store.create_account(a).await.unwrap();
    }
    let bind = |group_id: &str, accounts: &[&Account]| Binding {
        group_id: group_id.to_owned(),
        mode: BindingMode::Shared,
        accounts: accounts.iter().map(|a| bound(&a.id, false)).collect(),
    };
    store
        .put_binding(&bind(&g.id, &[&own, &pool]))
        .await
        .unwrap();
    store
        .put_binding(&bind(&h.id, &[&own, &h_own, &pool]))
        .await
        .unwrap();
    let inv = invitation(&g.id, &owner.id, None);
    store.create_invitation(&inv).await.unwrap();
    let gk_owner = key(&g.id, &owner.id);
    let gk_member = key(&g.id, &member.id);
    let hk = key(&h.id, &owner.id);
    for k in [&gk_owner, &gk_member, &hk] {
        store.create_key(k).await.unwrap();
    }
    let rec = usage_record(&g.id, &member.id, &gk_member.id, Some(&own.id), now_ms());
    store
        .insert_usage(std::slice::from_ref(&rec))
        .await
        .unwrap();

    store.delete_group(&g.id).await.unwrap();

    assert_eq!(store.group(&g.id).await.unwrap(), None);
    assert!(!store.groups().await.unwrap().iter().any(|x| x.id == g.id));
    assert_eq!(store.membership(&g.id, &owner.id).await.unwrap(), None);
    assert_eq!(store.membership(&g.id, &member.id).await.unwrap(), None);
    assert!(store.members(&g.id).await.unwrap().is_empty());
    assert!(store.groups_of_user(&member.id).await.unwrap().is_empty());
    assert_eq!(
        store.groups_of_user(&owner.id).await.unwrap(),
        vec![(h.clone(), GroupRole::Owner)]
    );
    assert_eq!(
        store
            .invitation_by_token_hash(&inv.token_hash)
            .await
            .unwrap(),
        None
    );
    expect_not_found(
        store.use_invitation(&inv.id, now_ms()).await,
        "deleted invitation",
    );
    assert_eq!(store.binding(&g.id).await.unwrap(), None);
    assert!(store.keys_of_group(&g.id, None).await.unwrap().is_empty());
    for k in [&gk_owner, &gk_member] {
        assert_eq!(store.key(&k.id).await.unwrap(), None);
        assert_eq!(store.key_by_hash(&k.key_hash.unwrap()).await.unwrap(), None);
    }
    assert_eq!(
        store.account(&own.id).await.unwrap(),
        None,
        "group-owned account"
    );
    assert!(store.bindings_of_account(&own.id).await.unwrap().is_empty());
    assert_eq!(store.account(&pool.id).await.unwrap(), Some(pool.clone()));
    assert_eq!(
        store.bindings_of_account(&pool.id).await.unwrap(),
        vec![(h.id.clone(), false)]
    );
    assert_eq!(
        store.binding(&h.id).await.unwrap(),
        Some(bind(&h.id, &[&h_own, &pool]))
    );

    assert_eq!(store.group(&h.id).await.unwrap(), Some(h.clone()));
    assert_eq!(store.key(&hk.id).await.unwrap(), Some(hk));
    assert_eq!(store.account(&h_own.id).await.unwrap(), Some(h_own));
    assert_eq!(store.user(&member.id).await.unwrap(), Some(member));
    let q = UsageQuery {
        scope: UsageScope::Group(g.id.clone()),
        from: None,
        to: None,
        group_by: None,
    };
    assert_eq!(
        store.usage_report(&q).await.unwrap().totals.requests,
        1,
        "usage history outlives the group"
    );
    expect_not_found(store.delete_group(&g.id).await, "delete twice");
}

pub fn usage_record(
    group_id: &str,
    user_id: &str,
    key_id: &str,
    account_id: Option<&str>,
    at: DateTime<Utc>,
) -> UsageRecord {
    UsageRecord {
        id: new_id(),
        at,
        key_id: key_id.to_owned(),
        user_id: user_id.to_owned(),
        group_id: group_id.to_owned(),
        account_id: account_id.map(str::to_owned),
        model: "claude-sonnet-4-5".into(),
        usage: Usage {
            input_tokens: 1200,
            output_tokens: 340,
            cache_write_5m_tokens: 50,
            cache_write_1h_tokens: 7,
            cache_read_tokens: 9000,
        },
        cost_micro_usd: 4321,
        latency_ms: 812,
        status: 200,
        accuracy: Accuracy::Exact,
    }
}

/// Usage: idempotent inserts, and reports equal to [`UsageQuery::aggregate`]
/// over the same records for every scope, bucketing and time bound.
pub async fn usage<S: Store + ?Sized>(store: &S) {
    let (g, g2) = (new_id(), new_id());
    let (u1, u2) = (new_id(), new_id());
    let (k1, k2, k3) = (new_id(), new_id(), new_id());
    let (a1, a2) = (new_id(), new_id());
    // Spans midnight and several hours, so day and hour buckets differ.
    let base = Utc.with_ymd_and_hms(2031, 3, 14, 21, 59, 59).unwrap();
    let at = |ms: i64| base + Duration::milliseconds(ms);
    let models = ["claude-sonnet-4-5", "claude-opus-4-1", "kimi-k2", "Zeta"];
    let statuses = [200, 200, 429, 500, 200, 400, 201];
    let accuracies = [Accuracy::Exact, Accuracy::Partial, Accuracy::Estimated];
    let offsets = [
        0,
        1,
        999,
        1_000,
        3_600_000,
        3_600_001,
        7_199_999,
        86_400_000,
        90_061_001,
        172_800_123,
        -3_600_000,
        -1,
    ];
    let mut records = Vec::new();
    for (i, &off) in offsets.iter().enumerate() {
        let (group_id, user_id, key_id) = match i % 4 {
            0 => (&g, &u1, &k1),
            1 => (&g, &u1, &k2),
            2 => (&g, &u2, &k3),
            _ => (&g2, &u2, &k3),
        };
        let account = match i % 3 {
            0 => Some(a1.as_str()),
            1 => Some(a2.as_str()),
            _ => None,
        };
        let n = i as u64 + 1;
        records.push(UsageRecord {
            model: models[i % models.len()].into(),
            usage: Usage {
                input_tokens: n * 1_000 + (1 << 33),
                output_tokens: n * 17,
                cache_write_5m_tokens: n,
                cache_write_1h_tokens: n * 2,
                cache_read_tokens: if i % 2 == 0 { 0 } else { n * 40_000 },
            },
            cost_micro_usd: 1_000 * n as i64 + 7,
            latency_ms: 10 * n,
            status: statuses[i % statuses.len()],
            accuracy: accuracies[i % accuracies.len()],
            ..usage_record(group_id, user_id, key_id, account, at(off))
        });
    }

    store.insert_usage(&[]).await.unwrap();
    store.insert_usage(&records[..5]).await.unwrap();
    // A retry of the batch with more records, one of them twice and one
    // changed under an existing id: nothing is counted twice, the first
    // write wins.
    let mut retry = records.clone();
    retry.push(records[7].clone());
    let mut changed = records[0].clone();
    changed.usage.input_tokens = 1;
    changed.cost_micro_usd = 1;
    retry.insert(0, changed);
    store.insert_usage(&retry).await.unwrap();
    store.insert_usage(&records[3..]).await.unwrap();

    let whole_group = UsageQuery {
        scope: UsageScope::Group(g.clone()),
        from: None,
        to: None,
        group_by: None,
    };
    let report = store.usage_report(&whole_group).await.unwrap();
    assert_eq!(report.totals.requests, 9);
    assert!(report.rows.is_empty(), "no rows without group_by");
    assert_eq!(report, whole_group.aggregate(&records));

    let scopes = [
        UsageScope::Key(k1.clone()),
        UsageScope::Key(k3.clone()),
        UsageScope::User(u1.clone()),
        UsageScope::User(u2.clone()),
        UsageScope::Group(g.clone()),
        UsageScope::Group(g2.clone()),
        UsageScope::Account(a1.clone()),
        UsageScope::Account(a2.clone()),
        UsageScope::Key(new_id()),
    ];
    let group_bys = [
        None,
        Some(UsageGroupBy::Day),
        Some(UsageGroupBy::Hour),
        Some(UsageGroupBy::Model),
        Some(UsageGroupBy::User),
        Some(UsageGroupBy::Key),
        Some(UsageGroupBy::Account),
    ];
    let sub_ms = Duration::microseconds(500);
    let bounds = [
        (None, None),
        (Some(at(1_000)), None),
        (None, Some(at(86_400_000))),
        (Some(at(1)), Some(at(7_199_999))),
        // Bounds finer than a millisecond must still be honoured exactly.
        (Some(at(999) - sub_ms), Some(at(3_600_001) + sub_ms)),
        (Some(at(999) + sub_ms), Some(at(3_600_001) - sub_ms)),
        (Some(at(5)), Some(at(5))),
        (Some(at(10)), Some(at(0))),
    ];
    for scope in &scopes {
        for group_by in group_bys {
            for (from, to) in bounds {
                let q = UsageQuery {
                    scope: scope.clone(),
                    from,
                    to,
                    group_by,
                };
                let got = store.usage_report(&q).await.unwrap();
                assert_eq!(got, q.aggregate(&records), "report for {q:?}");
            }
        }
    }

    let by_account = UsageQuery {
        scope: UsageScope::Group(g.clone()),
        from: None,
        to: None,
        group_by: Some(UsageGroupBy::Account),
    };
    let report = store.usage_report(&by_account).await.unwrap();
    assert_eq!(
        report.rows.first().map(|r| r.bucket.as_str()),
        Some(""),
        "no account"
    );
    let by_day = UsageQuery {
        group_by: Some(UsageGroupBy::Day),
        ..whole_group
    };
    let days: Vec<String> = store
        .usage_report(&by_day)
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.bucket)
        .collect();
    assert_eq!(days, ["2031-03-14", "2031-03-15", "2031-03-16"]);
}

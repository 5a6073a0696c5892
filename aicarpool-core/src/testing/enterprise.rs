//! Conformance checks of enterprise mode: enterprises, departments, their
//! admins, the enterprise's groups and pool, the delete cascade, the audit
//! log and events.

use chrono::Duration;
use serde_json::json;

use super::{
    account, add_user, expect_conflict, expect_not_found, group, invitation, key, membership,
    now_ms, sorted, user,
};
use crate::account::AccountOwner;
use crate::binding::{Binding, BindingMode, BoundAccount};
use crate::enterprise::{
    AuditEntry, AuditQuery, Budget, Department, DepartmentAdmin, Enterprise, EnterpriseEvent,
    EnterpriseMember, EnterpriseRole,
};
use crate::id::new_id;
use crate::org::{GroupRole, Invitation, InvitationTarget, User};
use crate::store::Store;
use crate::usage::{UsageGroupBy, UsageQuery, UsageScope};

/// An enterprise with both budgets set, created by `owner`.
pub fn enterprise(owner: &str) -> Enterprise {
    Enterprise {
        id: new_id(),
        name: "Acme Corp 🏢".into(),
        budget: Budget {
            monthly_usd: Some(0.1 + 0.2),
            daily_tokens: Some(1 << 40),
        },
        created_by: owner.to_owned(),
        created_at: now_ms(),
    }
}

pub fn enterprise_member(
    enterprise_id: &str,
    user_id: &str,
    role: EnterpriseRole,
) -> EnterpriseMember {
    EnterpriseMember {
        enterprise_id: enterprise_id.to_owned(),
        user_id: user_id.to_owned(),
        role,
        added_at: now_ms(),
    }
}

pub fn department(enterprise_id: &str, parent_id: Option<&str>) -> Department {
    Department {
        id: new_id(),
        enterprise_id: enterprise_id.to_owned(),
        parent_id: parent_id.map(str::to_owned),
        name: "R&D".into(),
        budget: Budget {
            monthly_usd: Some(12.5),
            daily_tokens: None,
        },
        created_at: now_ms(),
    }
}

/// Creates a fresh owner and an enterprise owned by them.
pub async fn setup_enterprise<S: Store + ?Sized>(store: &S) -> (User, Enterprise) {
    let owner = user();
    store.create_user(&owner).await.unwrap();
    let e = enterprise(&owner.id);
    store
        .create_enterprise(
            &e,
            &enterprise_member(&e.id, &owner.id, EnterpriseRole::Owner),
        )
        .await
        .unwrap();
    (owner, e)
}

pub async fn enterprises<S: Store + ?Sized>(store: &S) {
    let (owner, e) = setup_enterprise(store).await;
    assert_eq!(store.enterprise(&e.id).await.unwrap(), Some(e.clone()));
    assert_eq!(store.enterprise(&new_id()).await.unwrap(), None);
    assert!(store.enterprises().await.unwrap().contains(&e));
    expect_conflict(
        store
            .create_enterprise(
                &e,
                &enterprise_member(&e.id, &owner.id, EnterpriseRole::Owner),
            )
            .await,
        "duplicate enterprise id",
    );

    let mut changed = e.clone();
    changed.name = "Renamed".into();
    changed.budget = Budget::default();
    store.update_enterprise(&changed).await.unwrap();
    assert_eq!(
        store.enterprise(&e.id).await.unwrap(),
        Some(changed.clone())
    );
    let mut ghost = changed.clone();
    ghost.id = new_id();
    expect_not_found(
        store.update_enterprise(&ghost).await,
        "update unknown enterprise",
    );

    assert_eq!(
        store.enterprises_of_user(&owner.id).await.unwrap(),
        vec![(changed.clone(), EnterpriseRole::Owner)]
    );
    let admin = user();
    store.create_user(&admin).await.unwrap();
    assert_eq!(
        store.enterprise_member(&e.id, &admin.id).await.unwrap(),
        None
    );
    let m = enterprise_member(&e.id, &admin.id, EnterpriseRole::Admin);
    store.put_enterprise_member(&m).await.unwrap();
    assert_eq!(
        store.enterprise_member(&e.id, &admin.id).await.unwrap(),
        Some(m.clone())
    );
    // Putting again changes the role and keeps the date added.
    let promoted = EnterpriseMember {
        role: EnterpriseRole::Owner,
        added_at: m.added_at + Duration::days(1),
        ..m.clone()
    };
    store.put_enterprise_member(&promoted).await.unwrap();
    let got = store
        .enterprise_member(&e.id, &admin.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.role, got.added_at),
        (EnterpriseRole::Owner, m.added_at)
    );
    let members = store.enterprise_members(&e.id).await.unwrap();
    let ids: Vec<&str> = members.iter().map(|(_, u)| u.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![owner.id.as_str(), admin.id.as_str()],
        "oldest first"
    );
    assert_eq!(members[1].1, admin);

    store
        .remove_enterprise_member(&e.id, &admin.id)
        .await
        .unwrap();
    assert_eq!(
        store.enterprise_member(&e.id, &admin.id).await.unwrap(),
        None
    );
    expect_not_found(
        store.remove_enterprise_member(&e.id, &admin.id).await,
        "remove a non-member",
    );
    expect_not_found(
        store
            .put_enterprise_member(&enterprise_member(
                &new_id(),
                &admin.id,
                EnterpriseRole::Admin,
            ))
            .await,
        "member of an unknown enterprise",
    );
}

pub async fn departments<S: Store + ?Sized>(store: &S) {
    let (_, e) = setup_enterprise(store).await;
    let root = department(&e.id, None);
    let child = department(&e.id, Some(&root.id));
    store.create_department(&root).await.unwrap();
    store.create_department(&child).await.unwrap();
    expect_conflict(
        store.create_department(&root).await,
        "duplicate department id",
    );
    expect_not_found(
        store.create_department(&department(&new_id(), None)).await,
        "department of an unknown enterprise",
    );
    assert_eq!(
        store.department(&child.id).await.unwrap(),
        Some(child.clone())
    );
    assert_eq!(store.department(&new_id()).await.unwrap(), None);
    assert_eq!(
        store.departments(&e.id).await.unwrap(),
        vec![root.clone(), child.clone()]
    );

    let mut moved = child.clone();
    moved.parent_id = None;
    moved.name = "Platform".into();
    moved.budget = Budget::default();
    store.update_department(&moved).await.unwrap();
    assert_eq!(
        store.department(&child.id).await.unwrap(),
        Some(moved.clone())
    );
    let mut ghost = moved.clone();
    ghost.id = new_id();
    expect_not_found(
        store.update_department(&ghost).await,
        "update unknown department",
    );

    let (a, b) = (user(), user());
    store.create_user(&a).await.unwrap();
    store.create_user(&b).await.unwrap();
    let da = DepartmentAdmin {
        department_id: root.id.clone(),
        user_id: a.id.clone(),
        added_at: now_ms(),
    };
    store.add_department_admin(&da).await.unwrap();
    expect_conflict(store.add_department_admin(&da).await, "admin twice");
    let db = DepartmentAdmin {
        user_id: b.id.clone(),
        ..da.clone()
    };
    store.add_department_admin(&db).await.unwrap();
    let on_child = DepartmentAdmin {
        department_id: child.id.clone(),
        ..da.clone()
    };
    store.add_department_admin(&on_child).await.unwrap();
    assert_eq!(
        store.department_admins(&root.id).await.unwrap(),
        vec![da.clone(), db.clone()]
    );
    assert_eq!(
        sorted(
            store
                .departments_administered_by(&a.id)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect()
        ),
        sorted(vec![root.id.clone(), child.id.clone()])
    );
    store
        .remove_department_admin(&root.id, &b.id)
        .await
        .unwrap();
    expect_not_found(
        store.remove_department_admin(&root.id, &b.id).await,
        "remove a non-admin",
    );
    assert_eq!(store.department_admins(&root.id).await.unwrap(), vec![da]);

    store.delete_department(&child.id).await.unwrap();
    assert_eq!(store.department(&child.id).await.unwrap(), None);
    assert!(store.department_admins(&child.id).await.unwrap().is_empty());
    expect_not_found(store.delete_department(&child.id).await, "delete twice");
    assert_eq!(store.departments(&e.id).await.unwrap(), vec![root]);
}

pub async fn enterprise_groups_and_pool<S: Store + ?Sized>(store: &S) {
    let (owner, e) = setup_enterprise(store).await;
    let mut g = group(&owner.id);
    g.enterprise_id = Some(e.id.clone());
    g.department_id = None;
    store
        .create_group(&g, &membership(&g.id, &owner.id, GroupRole::Owner))
        .await
        .unwrap();
    assert_eq!(
        store.groups_of_enterprise(&e.id).await.unwrap(),
        vec![g.clone()]
    );
    assert!(store
        .groups_of_enterprise(&new_id())
        .await
        .unwrap()
        .is_empty());

    let pool = account(AccountOwner::Enterprise(e.id.clone()));
    let own = account(AccountOwner::Group(g.id.clone()));
    store.create_account(&pool).await.unwrap();
    store.create_account(&own).await.unwrap();
    assert_eq!(
        store.accounts_of_enterprise(&e.id).await.unwrap(),
        vec![pool]
    );
    assert_eq!(store.accounts_of_group(&g.id).await.unwrap(), vec![own]);
}

pub async fn delete_enterprise_cascades<S: Store + ?Sized>(store: &S) {
    let (owner, e) = setup_enterprise(store).await;
    let dept = department(&e.id, None);
    store.create_department(&dept).await.unwrap();
    store
        .add_department_admin(&DepartmentAdmin {
            department_id: dept.id.clone(),
            user_id: owner.id.clone(),
            added_at: now_ms(),
        })
        .await
        .unwrap();
    let mut g = group(&owner.id);
    g.enterprise_id = Some(e.id.clone());
    g.department_id = Some(dept.id.clone());
    store
        .create_group(&g, &membership(&g.id, &owner.id, GroupRole::Owner))
        .await
        .unwrap();
    let member = add_user(store, &g.id, GroupRole::Member).await;
    let k = key(&g.id, &member.id);
    store.create_key(&k).await.unwrap();
    let inv = invitation(&g.id, &owner.id, None);
    store.create_invitation(&inv).await.unwrap();
    let to_enterprise = role_invitation(
        &owner.id,
        InvitationTarget::Enterprise {
            enterprise_id: e.id.clone(),
            role: EnterpriseRole::Owner,
        },
    );
    let to_department = role_invitation(
        &owner.id,
        InvitationTarget::Department {
            department_id: dept.id.clone(),
        },
    );
    store.create_invitation(&to_enterprise).await.unwrap();
    store.create_invitation(&to_department).await.unwrap();
    let pool = account(AccountOwner::Enterprise(e.id.clone()));
    let own = account(AccountOwner::Group(g.id.clone()));
    store.create_account(&pool).await.unwrap();
    store.create_account(&own).await.unwrap();
    let bound = |id: &str| BoundAccount {
        account_id: id.to_owned(),
        priority: None,
        weight: None,
        dedicated: false,
    };
    store
        .put_binding(&Binding {
            group_id: g.id.clone(),
            mode: BindingMode::Shared,
            accounts: vec![bound(&pool.id), bound(&own.id)],
        })
        .await
        .unwrap();
    // A carpool group outside the enterprise that also binds the pool.
    let (_, outside) = super::setup_group(store).await;
    store
        .put_binding(&Binding {
            group_id: outside.id.clone(),
            mode: BindingMode::Shared,
            accounts: vec![bound(&pool.id)],
        })
        .await
        .unwrap();
    let ev = event(&e.id, "k1");
    assert!(store.record_event(&ev).await.unwrap());
    let entry = audit_entry(Some(&e.id), Some(&g.id));
    store.append_audit(&entry).await.unwrap();

    let keys = store.delete_enterprise(&e.id).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        vec![k.id.clone()]
    );
    assert_eq!(store.enterprise(&e.id).await.unwrap(), None);
    assert_eq!(
        store.enterprise_member(&e.id, &owner.id).await.unwrap(),
        None
    );
    assert_eq!(store.department(&dept.id).await.unwrap(), None);
    assert!(store.department_admins(&dept.id).await.unwrap().is_empty());
    assert!(store
        .departments_administered_by(&owner.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.group(&g.id).await.unwrap(), None);
    assert_eq!(store.membership(&g.id, &member.id).await.unwrap(), None);
    assert_eq!(store.key(&k.id).await.unwrap(), None);
    assert_eq!(store.key_by_hash(&k.key_hash.unwrap()).await.unwrap(), None);
    for gone in [&inv, &to_enterprise, &to_department] {
        assert_eq!(
            store
                .invitation_by_token_hash(&gone.token_hash)
                .await
                .unwrap(),
            None,
            "{} invitation left behind",
            gone.target.kind()
        );
    }
    assert_eq!(store.account(&pool.id).await.unwrap(), None);
    assert_eq!(store.account(&own.id).await.unwrap(), None);
    assert_eq!(store.binding(&g.id).await.unwrap(), None);
    let outside_binding = store.binding(&outside.id).await.unwrap().unwrap();
    assert!(
        outside_binding.accounts.is_empty(),
        "pool left other bindings"
    );
    assert!(store.events(&e.id, 10).await.unwrap().is_empty());
    // History stays.
    let q = AuditQuery {
        enterprise_id: Some(e.id.clone()),
        limit: 10,
        ..AuditQuery::default()
    };
    assert_eq!(store.audit(&q).await.unwrap(), vec![entry]);
    // The outsider group and its owner are untouched.
    assert!(store.group(&outside.id).await.unwrap().is_some());
    assert!(store.user(&owner.id).await.unwrap().is_some());
    expect_not_found(store.delete_enterprise(&e.id).await, "delete twice");
}

/// A one-use invitation for a named address to `target`.
fn role_invitation(created_by: &str, target: InvitationTarget) -> Invitation {
    Invitation {
        target,
        max_uses: Some(1),
        ..invitation(&new_id(), created_by, None)
    }
}

/// Invitations to an enterprise role and to a department's administration
/// round-trip with their target and use counting; a department's go with
/// it.
pub async fn role_invitations<S: Store + ?Sized>(store: &S) {
    let (owner, e) = setup_enterprise(store).await;
    let dept = department(&e.id, None);
    store.create_department(&dept).await.unwrap();
    let mut stored = Vec::new();
    for role in [EnterpriseRole::Owner, EnterpriseRole::Admin] {
        let target = InvitationTarget::Enterprise {
            enterprise_id: e.id.clone(),
            role,
        };
        stored.push(role_invitation(&owner.id, target));
    }
    let target = InvitationTarget::Department {
        department_id: dept.id.clone(),
    };
    stored.push(role_invitation(&owner.id, target));
    for inv in &stored {
        store.create_invitation(inv).await.unwrap();
        assert_eq!(
            store
                .invitation_by_token_hash(&inv.token_hash)
                .await
                .unwrap(),
            Some(inv.clone())
        );
        let now = now_ms();
        assert!(store.use_invitation(&inv.id, now).await.unwrap());
        assert!(
            !store.use_invitation(&inv.id, now).await.unwrap(),
            "one use"
        );
        store.release_invitation_use(&inv.id).await.unwrap();
        assert!(store.use_invitation(&inv.id, now).await.unwrap());
    }

    let department_invitation = stored.last().unwrap();
    store.delete_department(&dept.id).await.unwrap();
    assert_eq!(
        store
            .invitation_by_token_hash(&department_invitation.token_hash)
            .await
            .unwrap(),
        None,
        "a deleted department's invitations go with it"
    );
    assert!(store
        .invitation_by_token_hash(&stored[0].token_hash)
        .await
        .unwrap()
        .is_some());
}

fn audit_entry(enterprise_id: Option<&str>, group_id: Option<&str>) -> AuditEntry {
    AuditEntry {
        id: new_id(),
        at: now_ms(),
        actor_id: Some(new_id()),
        action: "key.issued".into(),
        target_type: "key".into(),
        target_id: new_id(),
        enterprise_id: enterprise_id.map(str::to_owned),
        group_id: group_id.map(str::to_owned),
        detail: json!({"name": "laptop", "ünïcode": "✓", "n": 1}),
    }
}

fn event(enterprise_id: &str, dedupe_key: &str) -> EnterpriseEvent {
    EnterpriseEvent {
        id: new_id(),
        enterprise_id: enterprise_id.to_owned(),
        department_id: Some(new_id()),
        at: now_ms(),
        kind: "budget.threshold".into(),
        dedupe_key: dedupe_key.to_owned(),
        detail: json!({"percent": 80, "usedUsd": 0.3}),
    }
}

pub async fn audit_log<S: Store + ?Sized>(store: &S) {
    let (e, g) = (new_id(), new_id());
    // A random instant long ago: entries of other runs on the same store
    // (which the unfiltered query also sees) do not fall among these.
    let t0 = chrono::DateTime::from_timestamp_millis(
        978_307_200_000 + rand::random::<u32>() as i64 * 100_000,
    )
    .unwrap();
    let mut entries = Vec::new();
    for i in 0..4 {
        let mut entry = match i {
            0 => audit_entry(Some(&e), None),
            1 => audit_entry(Some(&e), Some(&g)),
            2 => audit_entry(None, Some(&g)),
            _ => audit_entry(None, None),
        };
        entry.at = t0 + Duration::seconds(i);
        store.append_audit(&entry).await.unwrap();
        entries.push(entry);
    }
    expect_conflict(store.append_audit(&entries[0]).await, "duplicate audit id");
    let q = |e: Option<&str>, g: Option<&str>| AuditQuery {
        enterprise_id: e.map(str::to_owned),
        group_id: g.map(str::to_owned),
        before: None,
        limit: 100,
    };
    let ids = |v: Vec<AuditEntry>| v.into_iter().map(|x| x.id).collect::<Vec<_>>();
    assert_eq!(
        store.audit(&q(Some(&e), None)).await.unwrap(),
        vec![entries[1].clone(), entries[0].clone()],
        "newest first"
    );
    assert_eq!(
        ids(store.audit(&q(None, Some(&g))).await.unwrap()),
        vec![entries[2].id.clone(), entries[1].id.clone()]
    );
    assert_eq!(
        ids(store.audit(&q(Some(&e), Some(&g))).await.unwrap()),
        vec![entries[1].id.clone()]
    );
    let mut paged = q(None, Some(&g));
    paged.limit = 1;
    assert_eq!(
        ids(store.audit(&paged).await.unwrap()),
        vec![entries[2].id.clone()]
    );
    paged.before = Some(entries[2].at);
    assert_eq!(
        ids(store.audit(&paged).await.unwrap()),
        vec![entries[1].id.clone()]
    );
    let mut all = q(None, None);
    all.before = Some(entries[3].at + Duration::milliseconds(1));
    all.limit = 2;
    assert_eq!(
        ids(store.audit(&all).await.unwrap()),
        vec![entries[3].id.clone(), entries[2].id.clone()]
    );
}

pub async fn events<S: Store + ?Sized>(store: &S) {
    let (_, e) = setup_enterprise(store).await;
    let first = event(&e.id, "budget:dept:2026-11:80");
    assert!(store.record_event(&first).await.unwrap());
    let again = event(&e.id, "budget:dept:2026-11:80");
    assert!(!store.record_event(&again).await.unwrap(), "deduplicated");
    let mut second = event(&e.id, "budget:dept:2026-11:100");
    second.at = first.at + Duration::seconds(1);
    second.department_id = None;
    assert!(store.record_event(&second).await.unwrap());
    assert_eq!(
        store.events(&e.id, 10).await.unwrap(),
        vec![second.clone(), first]
    );
    assert_eq!(store.events(&e.id, 1).await.unwrap(), vec![second]);
    // The same key in another enterprise is another event.
    let (_, other) = setup_enterprise(store).await;
    assert!(store
        .record_event(&event(&other.id, "budget:dept:2026-11:80"))
        .await
        .unwrap());
    expect_not_found(
        store.record_event(&event(&new_id(), "x")).await,
        "event of an unknown enterprise",
    );
}

/// Department and enterprise usage scopes cover the groups placed in them
/// now: a department includes the departments below it.
pub async fn usage_by_organization<S: Store + ?Sized>(store: &S) {
    let (owner, e) = setup_enterprise(store).await;
    let root = department(&e.id, None);
    let child = department(&e.id, Some(&root.id));
    store.create_department(&root).await.unwrap();
    store.create_department(&child).await.unwrap();
    let mut groups = Vec::new();
    for dept in [Some(&root.id), Some(&child.id), None] {
        let mut g = group(&owner.id);
        g.enterprise_id = Some(e.id.clone());
        g.department_id = dept.cloned();
        store
            .create_group(&g, &membership(&g.id, &owner.id, GroupRole::Owner))
            .await
            .unwrap();
        groups.push(g.id);
    }
    let (_, outside) = super::setup_group(store).await;
    groups.push(outside.id);
    let at = now_ms() - Duration::hours(1);
    let records: Vec<_> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            (0..=i).map(move |_| super::usage_record(g, &new_id(), &new_id(), None, at))
        })
        .collect();
    store.insert_usage(&records).await.unwrap();
    let requests = |scope: UsageScope| async move {
        let q = UsageQuery {
            scope,
            from: None,
            to: None,
            group_by: Some(UsageGroupBy::Day),
        };
        let report = store.usage_report(&q).await.unwrap();
        assert_eq!(report.rows.len(), usize::from(report.totals.requests > 0));
        report.totals.requests
    };
    // Group i has i + 1 records.
    assert_eq!(
        requests(UsageScope::Department(root.id.clone())).await,
        1 + 2
    );
    assert_eq!(requests(UsageScope::Department(child.id.clone())).await, 2);
    assert_eq!(
        requests(UsageScope::Enterprise(e.id.clone())).await,
        1 + 2 + 3
    );
    assert_eq!(requests(UsageScope::Department(new_id())).await, 0);
    let since = store
        .usage_since(
            &UsageScope::Enterprise(e.id.clone()),
            &[at, at + Duration::milliseconds(1)],
        )
        .await
        .unwrap();
    assert_eq!(since[0].requests, 6);
    assert_eq!(since[1].requests, 0);
}

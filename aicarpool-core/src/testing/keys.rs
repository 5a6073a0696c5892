//! Conformance checks: member keys and the cascade of a deleted group.

use super::accounts::bound;
use super::*;

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

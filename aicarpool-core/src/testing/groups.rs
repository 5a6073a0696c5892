//! Conformance checks: groups, memberships and invitations.

use super::*;

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
        fair_share: Default::default(),
        fare_split: Default::default(),
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
    store.add_member(&ma, None).await.unwrap();
    store.add_member(&mb, None).await.unwrap();
    expect_conflict(store.add_member(&ma, None).await, "duplicate membership");

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

    let promoted = Membership {
        role: GroupRole::Admin,
        share_weight: 3,
        ..ma.clone()
    };
    store.update_member(&promoted).await.unwrap();
    assert_eq!(
        store.groups_of_user(&alice.id).await.unwrap(),
        vec![(g.clone(), GroupRole::Admin)]
    );
    assert_eq!(
        store.membership(&g.id, &alice.id).await.unwrap(),
        Some(promoted.clone()),
        "role and share weight written"
    );
    expect_not_found(
        store
            .update_member(&membership(&g.id, &new_id(), GroupRole::Admin))
            .await,
        "a non-member",
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

/// The member limit: the owner counts, a full group refuses with
/// `LimitReached`, an existing member still reads as `Conflict`, and no
/// limit means none.
pub async fn members_limit<S: Store + ?Sized>(store: &S) {
    let (_, g) = setup_group(store).await;
    let users = [user(), user(), user(), user()];
    for u in &users {
        store.create_user(u).await.unwrap();
    }
    let join = |u: &User| membership(&g.id, &u.id, GroupRole::Member);
    store.add_member(&join(&users[0]), Some(2)).await.unwrap();
    expect_limit(
        store.add_member(&join(&users[1]), Some(2)).await,
        "owner and one member fill two seats",
    );
    expect_conflict(
        store.add_member(&join(&users[0]), Some(2)).await,
        "a member of a full group",
    );
    assert_eq!(store.membership(&g.id, &users[1].id).await.unwrap(), None);
    store.add_member(&join(&users[1]), Some(3)).await.unwrap();
    store.add_member(&join(&users[2]), None).await.unwrap();
    assert_eq!(store.members(&g.id).await.unwrap().len(), 4);
    expect_limit(
        store.add_member(&join(&users[3]), Some(0)).await,
        "a limit below the count",
    );
}

/// Twenty concurrent joins of a group limited to five members (the owner
/// among them): exactly four win, the rest are refused with `LimitReached`.
pub async fn members_concurrent<S: Store + ?Sized>(store: &S) {
    let (_, g) = setup_group(store).await;
    let users: Vec<User> = (0..20).map(|_| user()).collect();
    for u in &users {
        store.create_user(u).await.unwrap();
    }
    let joins = users
        .iter()
        .map(|u| membership(&g.id, &u.id, GroupRole::Member))
        .collect::<Vec<_>>();
    let results =
        futures::future::join_all(joins.iter().map(|m| store.add_member(m, Some(5)))).await;
    let mut won = 0;
    for r in results {
        match r {
            Ok(()) => won += 1,
            Err(e) => assert!(
                matches!(e, StoreError::LimitReached(_)),
                "expected LimitReached, got {e:?}"
            ),
        }
    }
    assert_eq!(won, 4, "members never exceed max_members");
    assert_eq!(store.members(&g.id).await.unwrap().len(), 5);
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

    // A use given back can be taken again; giving back stops at zero.
    store.release_invitation_use(&twice.id).await.unwrap();
    assert!(store.use_invitation(&twice.id, now).await.unwrap());
    for _ in 0..3 {
        store.release_invitation_use(&twice.id).await.unwrap();
    }
    let after = store
        .invitation_by_token_hash(&twice.token_hash)
        .await
        .unwrap();
    assert_eq!(after.map(|i| i.uses), Some(0));
    store.release_invitation_use(&new_id()).await.unwrap();
    for _ in 0..2 {
        assert!(store.use_invitation(&twice.id, now).await.unwrap());
    }

    let open = Invitation {
        email: None,
        target: InvitationTarget::Group {
            group_id: g.id.clone(),
            role: GroupRole::Admin,
        },
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

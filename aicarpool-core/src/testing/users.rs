//! Conformance checks: users, sessions and the health check.

use super::*;

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
    let all = store.users().await.unwrap();
    assert!(all.contains(&u) && all.contains(&plain), "listed");
    assert!(
        all.windows(2).all(|w| w[0].created_at <= w[1].created_at),
        "oldest first"
    );

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

/// A user's sessions end together, all of them or all but one kept;
/// another user's sessions stay.
pub async fn user_sessions<S: Store + ?Sized>(store: &S) {
    let (u, other) = (user(), user());
    store.create_user(&u).await.unwrap();
    store.create_user(&other).await.unwrap();
    let now = now_ms();
    let session = |user_id: &str| Session {
        token_hash: MemberKey::generate("s", "s").hash().to_hex(),
        user_id: user_id.to_owned(),
        created_at: now,
        expires_at: now + Duration::hours(12),
    };
    let (a, b, c) = (session(&u.id), session(&u.id), session(&u.id));
    let theirs = session(&other.id);
    for s in [&a, &b, &c, &theirs] {
        store.create_session(s).await.unwrap();
    }

    let deleted = store
        .delete_user_sessions(&u.id, Some(&a.token_hash))
        .await
        .unwrap();
    assert_eq!(deleted, 2, "all but the kept one");
    assert_eq!(store.session(&a.token_hash).await.unwrap(), Some(a.clone()));
    assert_eq!(store.session(&b.token_hash).await.unwrap(), None);
    assert_eq!(store.session(&c.token_hash).await.unwrap(), None);
    assert_eq!(
        store.session(&theirs.token_hash).await.unwrap(),
        Some(theirs.clone()),
        "another user's session stays"
    );

    assert_eq!(store.delete_user_sessions(&u.id, None).await.unwrap(), 1);
    assert_eq!(store.session(&a.token_hash).await.unwrap(), None);
    assert_eq!(store.delete_user_sessions(&u.id, None).await.unwrap(), 0);
    assert_eq!(
        store.session(&theirs.token_hash).await.unwrap(),
        Some(theirs)
    );
}

/// A new password hash replaces the old one; an unknown user is `NotFound`.
pub async fn password_hash<S: Store + ?Sized>(store: &S) {
    let mut u = user();
    store.create_user(&u).await.unwrap();
    let replaced = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g";
    store.set_password_hash(&u.id, replaced).await.unwrap();
    u.password_hash = replaced.to_owned();
    assert_eq!(store.user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(
        store
            .user_by_email(&u.email)
            .await
            .unwrap()
            .map(|x| x.password_hash),
        Some(replaced.to_owned())
    );
    assert!(matches!(
        store.set_password_hash(&new_id(), replaced).await,
        Err(StoreError::NotFound)
    ));
}

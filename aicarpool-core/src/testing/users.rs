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

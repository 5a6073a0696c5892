//! `CredentialStore`: compare-and-swap of sealed credentials and refresh
//! leases, the two things that keep rotating OAuth tokens from being lost.

use chrono::Duration;

use super::{account, now_ms, setup_group};
use crate::account::AccountOwner;
use crate::id::new_id;
use crate::secret::Sealed;
use crate::store::Store;

/// A blob as distinct as a fresh seal.
fn blob(tag: u8) -> Sealed {
    let mut b: Vec<u8> = new_id().into_bytes();
    b.push(tag);
    b.extend([0u8, 255, tag]);
    Sealed(b)
}

/// Reads, swaps only from the expected blob (exactly one of many racers
/// wins), and never touches another account.
pub async fn credentials_swap<S: Store + ?Sized>(store: &S) {
    let (_, g) = setup_group(store).await;
    let a = account(AccountOwner::Group(g.id.clone()));
    let other = account(AccountOwner::Group(g.id.clone()));
    store.create_account(&a).await.unwrap();
    store.create_account(&other).await.unwrap();
    assert_eq!(
        store.sealed_credentials(&a.id).await.unwrap(),
        Some(a.credentials.clone())
    );
    assert_eq!(store.sealed_credentials(&new_id()).await.unwrap(), None);

    let at = now_ms() + Duration::seconds(5);
    let (b1, b2) = (blob(1), blob(2));
    assert!(
        !store
            .update_credentials_if(&a.id, &b2, &b1, at)
            .await
            .unwrap(),
        "a wrong expectation changes nothing"
    );
    assert_eq!(
        store.sealed_credentials(&a.id).await.unwrap(),
        Some(a.credentials.clone())
    );
    assert!(store
        .update_credentials_if(&a.id, &a.credentials, &b1, at)
        .await
        .unwrap());
    let stored = store.account(&a.id).await.unwrap().unwrap();
    assert_eq!(stored.credentials, b1);
    assert_eq!(stored.updated_at, at);
    assert_eq!(stored.name, a.name, "only the credentials change");
    // The old blob is gone: a stale writer loses.
    assert!(!store
        .update_credentials_if(&a.id, &a.credentials, &b2, at)
        .await
        .unwrap());
    assert!(!store
        .update_credentials_if(&new_id(), &b1, &b2, at)
        .await
        .unwrap());
    assert_eq!(
        store.sealed_credentials(&other.id).await.unwrap(),
        Some(other.credentials.clone())
    );

    // Racers holding the same expectation: exactly one wins.
    let news: Vec<Sealed> = (10..26).map(blob).collect();
    let results = futures::future::join_all(
        news.iter()
            .map(|n| store.update_credentials_if(&a.id, &b1, n, at)),
    )
    .await;
    let winners: Vec<&Sealed> = results
        .into_iter()
        .zip(&news)
        .filter_map(|(r, n)| r.unwrap().then_some(n))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one compare-and-swap wins");
    assert_eq!(
        store.sealed_credentials(&a.id).await.unwrap().as_ref(),
        Some(winners[0])
    );
}

/// One holder at a time; the holder may extend; an expired lease is free;
/// only the holder releases.
pub async fn credential_leases<S: Store + ?Sized>(store: &S) {
    let id = new_id();
    let now = now_ms();
    let later = now + Duration::seconds(30);
    assert!(store
        .try_lock_credentials(&id, "a", now, later)
        .await
        .unwrap());
    assert!(!store
        .try_lock_credentials(&id, "b", now, later)
        .await
        .unwrap());
    assert!(
        store
            .try_lock_credentials(&id, "a", now, later + Duration::seconds(1))
            .await
            .unwrap(),
        "the holder extends its lease"
    );
    store.unlock_credentials(&id, "b").await.unwrap();
    assert!(
        !store
            .try_lock_credentials(&id, "b", now, later)
            .await
            .unwrap(),
        "only the holder releases"
    );
    let expired = later + Duration::seconds(2);
    assert!(
        store
            .try_lock_credentials(&id, "b", expired, expired + Duration::seconds(30))
            .await
            .unwrap(),
        "an expired lease is free"
    );
    store.unlock_credentials(&id, "b").await.unwrap();
    assert!(store
        .try_lock_credentials(&id, "c", now, later)
        .await
        .unwrap());
    store.unlock_credentials(&id, "c").await.unwrap();

    // Many would-be holders at once: one gets it.
    let other = new_id();
    let holders: Vec<String> = (0..12).map(|i| format!("h{i}")).collect();
    let got = futures::future::join_all(
        holders
            .iter()
            .map(|h| store.try_lock_credentials(&other, h, now, later)),
    )
    .await;
    assert_eq!(got.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
}

//! `aicarpool rotate-master-key --new-key-file FILE`: re-seals every
//! upstream credential under a new master key, with no downtime.
//!
//! Every instance must open every credential at every step, so a rotation
//! goes in three:
//!
//! 1. Restart each instance with the new key in
//!    `AICARPOOL_MASTER_KEY_OTHERS`: they still seal with the old key and
//!    now also open what the new one sealed.
//! 2. Run this command (with the old key as the master key): each
//!    credential is re-sealed under the new key, by a compare-and-swap, so
//!    a token refresh racing it on an instance is never lost — the
//!    credential is read again and re-sealed.
//! 3. Restart each instance with the new key as the master key and the old
//!    one in `AICARPOOL_MASTER_KEY_OTHERS`; once all run so, drop it.
//!
//! Running it again re-seals only what is not yet under the new key.

use std::path::Path;

use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::DynStore;
use anyhow::Context;
use chrono::Utc;

/// Tries per credential when a refresh keeps changing it underneath.
const TRIES: usize = 5;

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub resealed: usize,
    /// Already under the new key (an earlier run).
    pub already: usize,
    /// Ids of accounts whose credentials open under none of the keys.
    pub unreadable: Vec<String>,
}

/// The new key from `path`, created (mode 0600) when it does not exist.
pub fn new_key(path: &Path) -> anyhow::Result<MasterKey> {
    crate::read_or_create_key_file(path)
}

/// Every account id: those of every group and of every enterprise pool.
async fn account_ids(store: &DynStore) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for g in store.groups().await? {
        ids.extend(
            store
                .accounts_of_group(&g.id)
                .await?
                .into_iter()
                .map(|a| a.id),
        );
    }
    for e in store.enterprises().await? {
        ids.extend(
            store
                .accounts_of_enterprise(&e.id)
                .await?
                .into_iter()
                .map(|a| a.id),
        );
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Re-seals every credential `current` opens under `new`.
pub async fn rotate(
    store: &DynStore,
    current: &Sealer,
    new: &MasterKey,
) -> anyhow::Result<Rotation> {
    // Seals under the new key, and tells what it sealed already.
    let resealer = Sealer::new(new);
    let mut done = Rotation::default();
    for id in account_ids(store).await? {
        let mut outcome = None;
        for _ in 0..TRIES {
            let Some(sealed) = store.sealed_credentials(&id).await? else {
                // Deleted meanwhile: nothing to re-seal.
                outcome = Some(None);
                break;
            };
            if resealer.opens_with_own_key(id.as_bytes(), &sealed) {
                outcome = Some(Some(false));
                break;
            }
            let Ok(creds) = current.open(&id, &sealed) else {
                done.unreadable.push(id.clone());
                outcome = Some(None);
                break;
            };
            let fresh = resealer
                .seal(&id, &creds)
                .context("sealing under the new key")?;
            if store
                .update_credentials_if(&id, &sealed, &fresh, Utc::now())
                .await?
            {
                outcome = Some(Some(true));
                break;
            }
        }
        match outcome {
            Some(Some(true)) => done.resealed += 1,
            Some(Some(false)) => done.already += 1,
            Some(None) => {}
            None => anyhow::bail!(
                "the credentials of account {id} kept changing; run the rotation again"
            ),
        }
    }
    Ok(done)
}

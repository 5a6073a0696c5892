//! The per-account credential lease, for writers other than the refresher.
//!
//! The refresher holds an account's lease while it trades the refresh token
//! and writes the new pair. Any other read-modify-write of the account
//! (an owner editing it) takes the same lease, so it cannot read the old
//! pair before a refresh and write it back after, which would bring a
//! consumed refresh token back to life and lose the account.

use std::time::Duration;

use chrono::Utc;

use crate::id::new_id;
use crate::store::{CredentialStore, StoreResult};

/// A held lease; give it back with [`CredentialLease::release`] (it also
/// ends by itself after its time-to-live).
#[derive(Debug)]
pub struct CredentialLease {
    account_id: String,
    holder: String,
}

impl CredentialLease {
    /// Waits up to `wait` for the lease of `account_id`, holding it for at
    /// most `ttl`. `None` when another holder kept it all that time.
    pub async fn acquire(
        store: &dyn CredentialStore,
        account_id: &str,
        ttl: Duration,
        wait: Duration,
    ) -> StoreResult<Option<Self>> {
        let holder = format!("edit-{}", new_id());
        let deadline = tokio::time::Instant::now() + wait;
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
        loop {
            let now = Utc::now();
            if store
                .try_lock_credentials(account_id, &holder, now, now + ttl)
                .await?
            {
                return Ok(Some(Self {
                    account_id: account_id.to_owned(),
                    holder,
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn release(self, store: &dyn CredentialStore) -> StoreResult<()> {
        store
            .unlock_credentials(&self.account_id, &self.holder)
            .await
    }
}

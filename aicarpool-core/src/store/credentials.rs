//! Safe writes of upstream credentials that rotate (OAuth token pairs).
//!
//! A Claude refresh token can be used once: two refreshes racing, or a
//! stale pair written over a fresh one, lose the account. So credential
//! writes after a refresh go through a compare-and-swap on the sealed blob
//! that was read before the refresh, and refreshes take a per-account lease
//! that lives in the store, so several gateway instances sharing one
//! database refresh one at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::secret::Sealed;

/// Credential reads, compare-and-swap writes and refresh leases.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The account's sealed credentials as stored now; `None` when the
    /// account does not exist.
    async fn sealed_credentials(&self, account_id: &str) -> StoreResult<Option<Sealed>>;

    /// Replaces the account's sealed credentials with `new` only if they
    /// are still exactly `expected`; returns whether it did. The sealed
    /// blob is its own version: every seal draws a fresh nonce, so any
    /// other write in between changes it. Also sets `updated_at` to `at`.
    async fn update_credentials_if(
        &self,
        account_id: &str,
        expected: &Sealed,
        new: &Sealed,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Takes the account's refresh lease for `holder` until `until` when
    /// it is free, expired at `now`, or already `holder`'s (then extended);
    /// returns whether `holder` holds it now.
    async fn try_lock_credentials(
        &self,
        account_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Gives the lease back if `holder` still holds it (a no-op otherwise).
    async fn unlock_credentials(&self, account_id: &str, holder: &str) -> StoreResult<()>;
}

/// A whole store seen as its [`CredentialStore`] part (for holders of a
/// [`DynStore`](super::DynStore) that hand on only this).
#[derive(Debug, Clone)]
pub struct StoreCredentials(pub super::DynStore);

#[async_trait]
impl CredentialStore for StoreCredentials {
    async fn sealed_credentials(&self, account_id: &str) -> StoreResult<Option<Sealed>> {
        self.0.sealed_credentials(account_id).await
    }

    async fn update_credentials_if(
        &self,
        account_id: &str,
        expected: &Sealed,
        new: &Sealed,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.0
            .update_credentials_if(account_id, expected, new, at)
            .await
    }

    async fn try_lock_credentials(
        &self,
        account_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.0
            .try_lock_credentials(account_id, holder, now, until)
            .await
    }

    async fn unlock_credentials(&self, account_id: &str, holder: &str) -> StoreResult<()> {
        self.0.unlock_credentials(account_id, holder).await
    }
}

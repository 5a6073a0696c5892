//! Credential compare-and-swap and refresh leases in the in-memory store.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::secret::Sealed;
use crate::store::{CredentialStore, StoreResult};

/// Leases by account id: who holds it, until when.
pub(super) type Leases = Mutex<HashMap<String, (String, DateTime<Utc>)>>;

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn sealed_credentials(&self, account_id: &str) -> StoreResult<Option<Sealed>> {
        Ok(self
            .t()
            .accounts
            .iter()
            .find(|a| a.id == account_id)
            .map(|a| a.credentials.clone()))
    }

    async fn update_credentials_if(
        &self,
        account_id: &str,
        expected: &Sealed,
        new: &Sealed,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut t = self.t();
        match t
            .accounts
            .iter_mut()
            .find(|a| a.id == account_id && a.credentials == *expected)
        {
            Some(a) => {
                a.credentials = new.clone();
                a.updated_at = at;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn try_lock_credentials(
        &self,
        account_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let free = leases
            .get(account_id)
            .is_none_or(|(h, end)| h == holder || *end <= now);
        if free {
            leases.insert(account_id.to_owned(), (holder.to_owned(), until));
        }
        Ok(free)
    }

    async fn unlock_credentials(&self, account_id: &str, holder: &str) -> StoreResult<()> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.get(account_id).is_some_and(|(h, _)| h == holder) {
            leases.remove(account_id);
        }
        Ok(())
    }
}

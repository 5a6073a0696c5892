//! Credential compare-and-swap and refresh leases.

use aicarpool_core::secret::Sealed;
use aicarpool_core::store::{CredentialStore, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{db_err, ms};
use super::SqliteStore;

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn sealed_credentials(&self, account_id: &str) -> StoreResult<Option<Sealed>> {
        let blob: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT credentials FROM accounts WHERE id = ?")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(blob.map(Sealed))
    }

    async fn update_credentials_if(
        &self,
        account_id: &str,
        expected: &Sealed,
        new: &Sealed,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // One statement: the comparison and the write cannot be split.
        let done = sqlx::query(
            "UPDATE accounts SET credentials = ?, updated_at = ?
             WHERE id = ? AND credentials = ?",
        )
        .bind(&new.0)
        .bind(ms(at))
        .bind(account_id)
        .bind(&expected.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn try_lock_credentials(
        &self,
        account_id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // Insert, or take over when the row is ours or has expired; a row
        // left unchanged means someone else holds the lease.
        let done = sqlx::query(
            "INSERT INTO credential_leases (account_id, holder, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (account_id) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE credential_leases.holder = excluded.holder
                    OR credential_leases.expires_at <= ?",
        )
        .bind(account_id)
        .bind(holder)
        .bind(ms(until))
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn unlock_credentials(&self, account_id: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM credential_leases WHERE account_id = ? AND holder = ?")
            .bind(account_id)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

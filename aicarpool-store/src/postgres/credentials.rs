//! Credential compare-and-swap and refresh leases, safe across instances:
//! each is one statement whose condition PostgreSQL re-checks on the row
//! it waited for, so of several racers on any number of instances exactly
//! one wins.

use aicarpool_core::secret::Sealed;
use aicarpool_core::store::{CredentialStore, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{db_err, ms};
use super::PostgresStore;

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn sealed_credentials(&self, account_id: &str) -> StoreResult<Option<Sealed>> {
        let blob: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT credentials FROM accounts WHERE id = $1")
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
        // One statement: the comparison and the write cannot be split. A
        // racer that waited on the row lock compares against the blob the
        // winner wrote, and loses.
        let done = sqlx::query(
            "UPDATE accounts SET credentials = $1, updated_at = $2
             WHERE id = $3 AND credentials = $4",
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
        // left unchanged means someone else holds the lease. `ON CONFLICT`
        // is atomic: racers inserting the same new lease wait for the
        // first and then see its row.
        let done = sqlx::query(
            "INSERT INTO credential_leases (account_id, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (account_id) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE credential_leases.holder = excluded.holder
                    OR credential_leases.expires_at <= $4",
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
        sqlx::query("DELETE FROM credential_leases WHERE account_id = $1 AND holder = $2")
            .bind(account_id)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

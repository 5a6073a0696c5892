//! Member keys.

use aicarpool_core::key::{KeyHash, KeyRecord};
use aicarpool_core::store::{KeyStore, StoreError, StoreResult};
use async_trait::async_trait;

use super::codec::{db_err, json, ms};
use super::{affected, PostgresStore};
use crate::codec::rows::key_row;

/// Unqualified, so they serve `RETURNING` too.
pub(super) const KEY_COLS: &str = "id, group_id, user_id, name, key_hash, hint, enabled, \
     expires_at, services::text AS services, models::text AS models, \
     clients::text AS clients, limits::text AS limits, created_at, updated_at";

fn hash_hex(key: &KeyRecord) -> StoreResult<String> {
    key.key_hash
        .as_ref()
        .map(KeyHash::to_hex)
        .ok_or_else(|| StoreError::Backend("a member key needs its hash".into()))
}

impl PostgresStore {
    /// Keys matching `filter`, whose parameters `$1`, `$2`, … are `args`.
    async fn select_keys(&self, filter: &str, args: &[&str]) -> StoreResult<Vec<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLS} FROM member_keys WHERE {filter}");
        self.fetch_many(&sql, args, key_row).await
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_key(&self, key: &KeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO member_keys (id, group_id, user_id, name, key_hash, hint, enabled,
                 expires_at, services, models, clients, limits, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11::jsonb,
                 $12::jsonb, $13, $14)",
        )
        .bind(&key.id)
        .bind(&key.group_id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(hash_hex(key)?)
        .bind(&key.hint)
        .bind(key.enabled)
        .bind(key.expires_at.map(ms))
        .bind(json(&key.services)?)
        .bind(json(&key.models)?)
        .bind(json(&key.clients)?)
        .bind(json(&key.limits)?)
        .bind(ms(key.created_at))
        .bind(ms(key.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        Ok(self.select_keys("id = $1", &[id]).await?.into_iter().next())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        let hex = hash.to_hex();
        Ok(self
            .select_keys("key_hash = $1", &[&hex])
            .await?
            .into_iter()
            .next())
    }

    async fn keys_of_group(
        &self,
        group_id: &str,
        user_id: Option<&str>,
    ) -> StoreResult<Vec<KeyRecord>> {
        match user_id {
            Some(user_id) => {
                self.select_keys(
                    "group_id = $1 AND user_id = $2 ORDER BY created_at, seq",
                    &[group_id, user_id],
                )
                .await
            }
            None => {
                self.select_keys("group_id = $1 ORDER BY created_at, seq", &[group_id])
                    .await
            }
        }
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE member_keys SET group_id = $1, user_id = $2, name = $3, key_hash = $4,
                 hint = $5, enabled = $6, expires_at = $7, services = $8::jsonb,
                 models = $9::jsonb, clients = $10::jsonb, limits = $11::jsonb,
                 created_at = $12, updated_at = $13
             WHERE id = $14",
        )
        .bind(&key.group_id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(hash_hex(key)?)
        .bind(&key.hint)
        .bind(key.enabled)
        .bind(key.expires_at.map(ms))
        .bind(json(&key.services)?)
        .bind(json(&key.models)?)
        .bind(json(&key.clients)?)
        .bind(json(&key.limits)?)
        .bind(ms(key.created_at))
        .bind(ms(key.updated_at))
        .bind(&key.id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        affected(done)
    }

    async fn delete_key(&self, id: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM member_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        affected(done)
    }
}

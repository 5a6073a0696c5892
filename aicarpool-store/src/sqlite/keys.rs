//! Member keys.

use aicarpool_core::key::{KeyHash, KeyRecord};
use aicarpool_core::store::{KeyStore, StoreError, StoreResult};
use async_trait::async_trait;

use super::codec::{db_err, json, ms};
use super::{affected, SqliteStore};
use crate::codec::rows::key_row;

pub(super) const KEY_COLS: &str = "id, group_id, user_id, name, key_hash, hint, enabled, \
                                   expires_at, services, models, clients, limits, created_at, \
                                   updated_at";

fn hash_hex(key: &KeyRecord) -> StoreResult<String> {
    key.key_hash
        .as_ref()
        .map(KeyHash::to_hex)
        .ok_or_else(|| StoreError::Backend("a member key needs its hash".into()))
}

impl SqliteStore {
    async fn select_keys(&self, filter: &str, args: &[&str]) -> StoreResult<Vec<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLS} FROM member_keys WHERE {filter}");
        self.fetch_many(&sql, args, key_row).await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, key: &KeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO member_keys (id, group_id, user_id, name, key_hash, hint, enabled,
                 expires_at, services, models, clients, limits, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        Ok(self.select_keys("id = ?", &[id]).await?.into_iter().next())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        let hex = hash.to_hex();
        Ok(self
            .select_keys("key_hash = ?", &[&hex])
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
                    "group_id = ? AND user_id = ? ORDER BY created_at, rowid",
                    &[group_id, user_id],
                )
                .await
            }
            None => {
                self.select_keys("group_id = ? ORDER BY created_at, rowid", &[group_id])
                    .await
            }
        }
    }

    async fn update_key(&self, key: &KeyRecord) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE member_keys SET group_id = ?, user_id = ?, name = ?, key_hash = ?, hint = ?,
                 enabled = ?, expires_at = ?, services = ?, models = ?, clients = ?, limits = ?,
                 created_at = ?, updated_at = ?
             WHERE id = ?",
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
        let done = sqlx::query("DELETE FROM member_keys WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        affected(done)
    }
}

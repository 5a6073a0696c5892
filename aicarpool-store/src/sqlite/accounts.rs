//! Upstream accounts and group bindings.

use aicarpool_core::account::Account;
use aicarpool_core::binding::Binding;
use aicarpool_core::store::{AccountStore, StoreResult};
use async_trait::async_trait;

use super::codec::{db_err, json, mode, mode_str, ms, owner_cols, preset_str};
use super::{affected, SqliteStore};
use crate::codec::rows::{account_binding_row, account_row, bound_row};

pub(super) const ACCOUNT_COLS: &str =
    "id, name, platform, preset, base_url, owner_kind, owner_id, models, \
                            model_map, priority, weight, max_concurrency, proxy, enabled, \
                            credentials, created_at, updated_at";

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, a: &Account) -> StoreResult<()> {
        let (owner_kind, owner_id) = owner_cols(&a.owner);
        sqlx::query(
            "INSERT INTO accounts (id, name, platform, preset, base_url, owner_kind, owner_id,
                 models, model_map, priority, weight, max_concurrency, proxy, enabled,
                 credentials, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(&a.name)
        .bind(a.platform.as_str())
        .bind(a.preset.map(preset_str))
        .bind(&a.base_url)
        .bind(owner_kind)
        .bind(owner_id)
        .bind(json(&a.models)?)
        .bind(json(&a.model_map)?)
        .bind(a.priority)
        .bind(a.weight)
        .bind(a.max_concurrency)
        .bind(&a.proxy)
        .bind(a.enabled)
        .bind(&a.credentials.0)
        .bind(ms(a.created_at))
        .bind(ms(a.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn account(&self, id: &str) -> StoreResult<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?");
        self.fetch_one(&sql, &[id], account_row).await
    }

    async fn accounts_of_group(&self, group_id: &str) -> StoreResult<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLS} FROM accounts
             WHERE owner_kind = 'group' AND owner_id = ?
             ORDER BY created_at, rowid"
        );
        self.fetch_many(&sql, &[group_id], account_row).await
    }

    async fn update_account(&self, a: &Account) -> StoreResult<()> {
        let (owner_kind, owner_id) = owner_cols(&a.owner);
        let done = sqlx::query(
            "UPDATE accounts SET name = ?, platform = ?, preset = ?, base_url = ?,
                 owner_kind = ?, owner_id = ?, models = ?, model_map = ?, priority = ?,
                 weight = ?, max_concurrency = ?, proxy = ?, enabled = ?, credentials = ?,
                 created_at = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&a.name)
        .bind(a.platform.as_str())
        .bind(a.preset.map(preset_str))
        .bind(&a.base_url)
        .bind(owner_kind)
        .bind(owner_id)
        .bind(json(&a.models)?)
        .bind(json(&a.model_map)?)
        .bind(a.priority)
        .bind(a.weight)
        .bind(a.max_concurrency)
        .bind(&a.proxy)
        .bind(a.enabled)
        .bind(&a.credentials.0)
        .bind(ms(a.created_at))
        .bind(ms(a.updated_at))
        .bind(&a.id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        affected(done)
    }

    async fn delete_account(&self, id: &str) -> StoreResult<()> {
        // `binding_accounts` rows go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM accounts WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        affected(done)
    }

    async fn put_binding(&self, binding: &Binding) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO bindings (group_id, mode) VALUES (?, ?)
             ON CONFLICT (group_id) DO UPDATE SET mode = excluded.mode",
        )
        .bind(&binding.group_id)
        .bind(mode_str(binding.mode))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM binding_accounts WHERE group_id = ?")
            .bind(&binding.group_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for (position, a) in (0_i64..).zip(&binding.accounts) {
            sqlx::query(
                "INSERT INTO binding_accounts
                     (group_id, position, account_id, priority, weight, dedicated)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&binding.group_id)
            .bind(position)
            .bind(&a.account_id)
            .bind(a.priority)
            .bind(a.weight)
            .bind(a.dedicated)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn binding(&self, group_id: &str) -> StoreResult<Option<Binding>> {
        // One read transaction, so the mode and the entries come from the
        // same snapshot even while the binding is being replaced.
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let Some(mode_name) =
            sqlx::query_scalar::<_, String>("SELECT mode FROM bindings WHERE group_id = ?")
                .bind(group_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT account_id, priority, weight, dedicated FROM binding_accounts
             WHERE group_id = ? ORDER BY position",
        )
        .bind(group_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(Binding {
            group_id: group_id.to_owned(),
            mode: mode(&mode_name)?,
            accounts: rows.iter().map(bound_row).collect::<StoreResult<_>>()?,
        }))
    }

    async fn bindings_of_account(&self, account_id: &str) -> StoreResult<Vec<(String, bool)>> {
        self.fetch_many(
            "SELECT group_id, dedicated FROM binding_accounts
             WHERE account_id = ? ORDER BY group_id, dedicated",
            &[account_id],
            account_binding_row,
        )
        .await
    }
}

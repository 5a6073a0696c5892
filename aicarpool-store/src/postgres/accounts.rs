//! Upstream accounts and group bindings.

use aicarpool_core::account::Account;
use aicarpool_core::binding::Binding;
use aicarpool_core::store::{AccountStore, StoreResult};
use async_trait::async_trait;

use super::codec::{db_err, json, mode, mode_str, ms, owner_cols, preset_str, wide, ReadRow};
use super::{affected, PostgresStore};
use crate::codec::rows::{account_binding_row, account_row, bound_row};

pub(super) const ACCOUNT_COLS: &str = "id, name, platform, preset, base_url, owner_kind, \
     owner_id, models::text AS models, model_map::text AS model_map, priority, weight, \
     max_concurrency, proxy, enabled, credentials, created_at, updated_at";

#[async_trait]
impl AccountStore for PostgresStore {
    async fn create_account(&self, a: &Account) -> StoreResult<()> {
        let (owner_kind, owner_id) = owner_cols(&a.owner);
        sqlx::query(
            "INSERT INTO accounts (id, name, platform, preset, base_url, owner_kind, owner_id,
                 models, model_map, priority, weight, max_concurrency, proxy, enabled,
                 credentials, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12, $13, $14,
                 $15, $16, $17)",
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
        .bind(wide(a.weight))
        .bind(a.max_concurrency.map(wide))
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
        let sql = format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1");
        self.fetch_one(&sql, &[id], account_row).await
    }

    async fn accounts_of_group(&self, group_id: &str) -> StoreResult<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLS} FROM accounts
             WHERE owner_kind = 'group' AND owner_id = $1
             ORDER BY created_at, seq"
        );
        self.fetch_many(&sql, &[group_id], account_row).await
    }

    async fn update_account(&self, a: &Account) -> StoreResult<()> {
        let (owner_kind, owner_id) = owner_cols(&a.owner);
        let done = sqlx::query(
            "UPDATE accounts SET name = $1, platform = $2, preset = $3, base_url = $4,
                 owner_kind = $5, owner_id = $6, models = $7::jsonb, model_map = $8::jsonb,
                 priority = $9, weight = $10, max_concurrency = $11, proxy = $12, enabled = $13,
                 credentials = $14, created_at = $15, updated_at = $16
             WHERE id = $17",
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
        .bind(wide(a.weight))
        .bind(a.max_concurrency.map(wide))
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
        let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        affected(done)
    }

    async fn put_binding(&self, binding: &Binding) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // The upsert locks the binding's row until commit, so two instances
        // replacing one binding take turns instead of mixing their entries.
        sqlx::query(
            "INSERT INTO bindings (group_id, mode) VALUES ($1, $2)
             ON CONFLICT (group_id) DO UPDATE SET mode = excluded.mode",
        )
        .bind(&binding.group_id)
        .bind(mode_str(binding.mode))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM binding_accounts WHERE group_id = $1")
            .bind(&binding.group_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if !binding.accounts.is_empty() {
            // All entries in one statement, numbered in the order given.
            let entries = &binding.accounts;
            sqlx::query(
                "INSERT INTO binding_accounts
                     (group_id, position, account_id, priority, weight, dedicated)
                 SELECT $1, e.n - 1, e.account_id, e.priority, e.weight, e.dedicated
                 FROM UNNEST($2::text[], $3::integer[], $4::bigint[], $5::boolean[])
                     WITH ORDINALITY AS e (account_id, priority, weight, dedicated, n)",
            )
            .bind(&binding.group_id)
            .bind(
                entries
                    .iter()
                    .map(|a| a.account_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(entries.iter().map(|a| a.priority).collect::<Vec<_>>())
            .bind(
                entries
                    .iter()
                    .map(|a| a.weight.map(wide))
                    .collect::<Vec<_>>(),
            )
            .bind(entries.iter().map(|a| a.dedicated).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn binding(&self, group_id: &str) -> StoreResult<Option<Binding>> {
        // One statement reads one snapshot, so the mode and the entries
        // match even while another instance replaces the binding.
        let rows = sqlx::query(
            "SELECT b.mode AS mode, e.account_id AS account_id, e.priority AS priority,
                 e.weight AS weight, e.dedicated AS dedicated
             FROM bindings b LEFT JOIN binding_accounts e ON e.group_id = b.group_id
             WHERE b.group_id = $1
             ORDER BY e.position",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut accounts = Vec::with_capacity(rows.len());
        for row in &rows {
            // `account_id` is `NULL` on the one row a binding without
            // entries yields.
            if row.opt_text("account_id")?.is_some() {
                accounts.push(bound_row(row)?);
            }
        }
        Ok(Some(Binding {
            group_id: group_id.to_owned(),
            mode: mode(&first.text("mode")?)?,
            accounts,
        }))
    }

    async fn bindings_of_account(&self, account_id: &str) -> StoreResult<Vec<(String, bool)>> {
        // Byte order of ids, as SQLite sorts them, whatever the database's
        // collation.
        self.fetch_many(
            "SELECT group_id, dedicated FROM binding_accounts
             WHERE account_id = $1 ORDER BY group_id COLLATE \"C\", dedicated",
            &[account_id],
            account_binding_row,
        )
        .await
    }
}

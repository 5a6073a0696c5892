//! The audit log and enterprise events.

use aicarpool_core::enterprise::{AuditEntry, AuditQuery, EnterpriseEvent};
use aicarpool_core::store::{AuditStore, StoreResult};
use async_trait::async_trait;

use super::codec::{db_err, json, ms, ms_ceil};
use super::SqliteStore;
use crate::codec::rows::{audit_row, event_row};

const AUDIT_COLS: &str =
    "id, at, actor_id, action, target_type, target_id, enterprise_id, group_id, detail";

const EVENT_COLS: &str = "id, enterprise_id, department_id, at, kind, dedupe_key, detail";

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor_id, action, target_type, target_id,
                 enterprise_id, group_id, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(ms(e.at))
        .bind(&e.actor_id)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(&e.enterprise_id)
        .bind(&e.group_id)
        .bind(json(&e.detail)?)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        // `?1 IS NULL OR …` keeps one statement (and one plan) for every
        // combination of filters.
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log
             WHERE (?1 IS NULL OR enterprise_id = ?1)
               AND (?2 IS NULL OR group_id = ?2)
               AND (?3 IS NULL OR at < ?3)
             ORDER BY at DESC, rowid DESC
             LIMIT ?4"
        );
        let rows = sqlx::query(&sql)
            .bind(&q.enterprise_id)
            .bind(&q.group_id)
            .bind(q.before.map(ms_ceil))
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(audit_row).collect()
    }

    async fn record_event(&self, e: &EnterpriseEvent) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO enterprise_events (id, enterprise_id, department_id, at, kind,
                 dedupe_key, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (enterprise_id, dedupe_key) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.enterprise_id)
        .bind(&e.department_id)
        .bind(ms(e.at))
        .bind(&e.kind)
        .bind(&e.dedupe_key)
        .bind(json(&e.detail)?)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn events(&self, enterprise_id: &str, limit: u32) -> StoreResult<Vec<EnterpriseEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM enterprise_events WHERE enterprise_id = ?
             ORDER BY at DESC, rowid DESC LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(enterprise_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(event_row).collect()
    }
}

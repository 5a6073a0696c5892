//! The audit log and enterprise events.

use aicarpool_core::enterprise::{AuditEntry, AuditQuery, EnterpriseEvent};
use aicarpool_core::store::{AuditStore, StoreResult};
use async_trait::async_trait;

use super::codec::{db_err, json, ms, ms_ceil};
use super::PostgresStore;
use crate::codec::rows::{audit_row, event_row};

const AUDIT_COLS: &str = "id, at, actor_id, action, target_type, target_id, enterprise_id, \
                          group_id, detail::text AS detail";

const EVENT_COLS: &str =
    "id, enterprise_id, department_id, at, kind, dedupe_key, detail::text AS detail";

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor_id, action, target_type, target_id,
                 enterprise_id, group_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
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
        // Only the filters given go into the statement: a `$1 IS NULL OR …`
        // condition would leave PostgreSQL's cached generic plan unable to
        // pick the matching index. There are only eight shapes.
        let mut conditions = Vec::new();
        let mut texts = Vec::new();
        for (col, value) in [
            ("enterprise_id", &q.enterprise_id),
            ("group_id", &q.group_id),
        ] {
            if let Some(v) = value {
                texts.push(v.as_str());
                conditions.push(format!("{col} = ${}", texts.len()));
            }
        }
        let before = q.before.map(ms_ceil);
        if before.is_some() {
            conditions.push(format!("at < ${}", texts.len() + 1));
        }
        let limit = texts.len() + usize::from(before.is_some()) + 1;
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log {filter}
             ORDER BY at DESC, seq DESC LIMIT ${limit}"
        );
        let mut query = sqlx::query(&sql);
        for t in texts {
            query = query.bind(t);
        }
        if let Some(b) = before {
            query = query.bind(b);
        }
        let rows = query
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
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
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
            "SELECT {EVENT_COLS} FROM enterprise_events WHERE enterprise_id = $1
             ORDER BY at DESC, seq DESC LIMIT $2"
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

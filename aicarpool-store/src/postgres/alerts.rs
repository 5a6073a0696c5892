//! Alert rules and the events they told.

use aicarpool_core::alert::{AlertOwner, AlertRule};
use aicarpool_core::store::{AlertStore, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{db_err, ms};
use super::PostgresStore;
use crate::codec::rows::{alert_owner_ids, alert_row, threshold_milli, ALERT_COLS};

#[async_trait]
impl AlertStore for PostgresStore {
    async fn create_alert(&self, r: &AlertRule) -> StoreResult<()> {
        let (group_id, enterprise_id) = alert_owner_ids(&r.owner);
        sqlx::query(
            "INSERT INTO alert_rules (id, group_id, enterprise_id, kind, target, threshold_milli,
                 secret, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&r.id)
        .bind(group_id)
        .bind(enterprise_id)
        .bind(r.kind.as_str())
        .bind(r.target.as_string())
        .bind(threshold_milli(r.threshold))
        .bind(&r.secret.0)
        .bind(&r.created_by)
        .bind(ms(r.created_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn alert(&self, id: &str) -> StoreResult<Option<AlertRule>> {
        let sql = format!("SELECT {ALERT_COLS} FROM alert_rules WHERE id = $1");
        self.fetch_one(&sql, &[id], alert_row).await
    }

    async fn alerts_of(&self, owner: &AlertOwner) -> StoreResult<Vec<AlertRule>> {
        let (col, id) = match owner {
            AlertOwner::Group(id) => ("group_id", id),
            AlertOwner::Enterprise(id) => ("enterprise_id", id),
        };
        let sql = format!(
            "SELECT {ALERT_COLS} FROM alert_rules WHERE {col} = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(alert_row).collect()
    }

    async fn all_alerts(&self) -> StoreResult<Vec<AlertRule>> {
        let sql = format!("SELECT {ALERT_COLS} FROM alert_rules ORDER BY created_at, id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(alert_row).collect()
    }

    async fn delete_alert(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM alert_rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn claim_alert_event(
        &self,
        rule_id: &str,
        event_key: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO alert_events (rule_id, event_key, at) VALUES ($1, $2, $3)
             ON CONFLICT (rule_id, event_key) DO NOTHING",
        )
        .bind(rule_id)
        .bind(event_key)
        .bind(ms(at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

//! Account fees, the month's use and closed statements.

use aicarpool_core::fare::{FareUse, FeeChange, Month, Statement};
use aicarpool_core::store::{sort_fare_use, FareStore, FareUseScope, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{db_err, json, ms, ms_ceil};
use super::PostgresStore;
use crate::codec::fares::{
    fare_use_row, fee_change_cols, fee_change_row, statement_row, FARE_USE_SUMS_BIGINT,
};

#[async_trait]
impl FareStore for PostgresStore {
    async fn set_fee(&self, account_id: &str, change: &FeeChange) -> StoreResult<()> {
        let (day, amount, period) = fee_change_cols(change);
        sqlx::query(
            "INSERT INTO account_fees (account_id, from_day, amount_micro_usd, period)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id, from_day) DO UPDATE
             SET amount_micro_usd = excluded.amount_micro_usd, period = excluded.period",
        )
        .bind(account_id)
        .bind(day)
        .bind(amount)
        .bind(period)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn fee_history(&self, account_id: &str) -> StoreResult<Vec<FeeChange>> {
        let rows = sqlx::query(
            "SELECT from_day, amount_micro_usd, period FROM account_fees
             WHERE account_id = $1 ORDER BY from_day COLLATE \"C\"",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(fee_change_row).collect()
    }

    async fn fare_use(
        &self,
        scope: &FareUseScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<FareUse>> {
        let sql = |filter: &str| {
            format!(
                "SELECT {FARE_USE_SUMS_BIGINT} FROM usage_facts
                 WHERE {filter} AND at >= $2 AND at < $3
                 GROUP BY group_id, account_id, user_id"
            )
        };
        let (from, to) = (ms_ceil(from), ms_ceil(to));
        let rows = match scope {
            FareUseScope::Group(g) => {
                sqlx::query(&sql("group_id = $1"))
                    .bind(g)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await
            }
            FareUseScope::Accounts(ids) if ids.is_empty() => return Ok(Vec::new()),
            FareUseScope::Accounts(ids) => {
                sqlx::query(&sql("account_id = ANY($1)"))
                    .bind(ids)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_err)?;
        let mut out = rows
            .iter()
            .map(fare_use_row)
            .collect::<StoreResult<Vec<_>>>()?;
        sort_fare_use(&mut out);
        Ok(out)
    }

    async fn close_statement(
        &self,
        group_id: &str,
        statement: &Statement,
        at: DateTime<Utc>,
    ) -> StoreResult<Statement> {
        // The unique key decides between instances closing together; the
        // loser reads what the winner stored.
        let inserted = sqlx::query(
            "INSERT INTO fare_statements (group_id, month, statement, closed_at)
             VALUES ($1, $2, $3::jsonb, $4)
             ON CONFLICT (group_id, month) DO NOTHING",
        )
        .bind(group_id)
        .bind(statement.month.to_string())
        .bind(json(statement)?)
        .bind(ms(at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 1 {
            return Ok(statement.clone());
        }
        self.closed_statement(group_id, statement.month)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn closed_statement(
        &self,
        group_id: &str,
        month: Month,
    ) -> StoreResult<Option<Statement>> {
        let month = month.to_string();
        self.fetch_one(
            "SELECT statement::text AS statement FROM fare_statements
             WHERE group_id = $1 AND month = $2",
            &[group_id, &month],
            statement_row,
        )
        .await
    }
}

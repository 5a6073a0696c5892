//! Usage records and reports, aggregated by the database.

use std::sync::LazyLock;

use aicarpool_core::store::{RequestLogStore, StoreResult, UsageStore};
use aicarpool_core::usage::{
    RefusalReason, RequestPage, RequestQuery, UsageGroupBy, UsageQuery, UsageRecord, UsageReport,
    UsageScope, UsageTotals,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{db_err, int, ms, ms_ceil};
use super::SqliteStore;
use crate::codec::request_log::{self, Param};
use crate::codec::rows::{
    failed_over_col, refusal_sums, since_totals, usage_record_row, usage_report,
};

/// The bucket of each `UsageGroupBy`, written to match
/// [`UsageQuery::bucket`] exactly (`at` is unix milliseconds, UTC).
fn bucket_sql(group_by: UsageGroupBy) -> &'static str {
    match group_by {
        UsageGroupBy::Day => "strftime('%Y-%m-%d', at / 1000, 'unixepoch')",
        UsageGroupBy::Hour => "strftime('%Y-%m-%dT%H:00:00Z', at / 1000, 'unixepoch')",
        UsageGroupBy::Model => "model",
        UsageGroupBy::User => "user_id",
        UsageGroupBy::Key => "key_id",
        UsageGroupBy::Account => "COALESCE(account_id, '')",
    }
}

/// The sums of a report, over `usage_facts` (records and the rollups
/// retention left of older ones), refusals by reason last.
static TOTALS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "COALESCE(SUM(requests), 0) AS requests,
    COALESCE(SUM(input_tokens), 0) AS input_tokens,
    COALESCE(SUM(output_tokens), 0) AS output_tokens,
    COALESCE(SUM(cache_write_5m_tokens + cache_write_1h_tokens), 0) AS cache_write_tokens,
    COALESCE(SUM(cache_write_5m_tokens), 0) AS cache_write_5m_tokens,
    COALESCE(SUM(cache_write_1h_tokens), 0) AS cache_write_1h_tokens,
    COALESCE(SUM(cache_read_tokens), 0) AS cache_read_tokens,
    COALESCE(SUM(cost_micro_usd), 0) AS cost_micro_usd,
    COALESCE(SUM(errors), 0) AS errors,
    COALESCE(SUM(estimated), 0) AS estimated,
    COALESCE(SUM(partial), 0) AS partial,
    {}",
        refusal_sums(|c| format!("COALESCE(SUM({c}), 0) AS {c}"))
    )
});

/// The `WHERE` condition of a scope and the values it binds.
fn scope_filter(scope: &UsageScope) -> (&'static str, Vec<&str>) {
    match scope {
        UsageScope::Key(id) => ("key_id = ?", vec![id]),
        UsageScope::User(id) => ("user_id = ?", vec![id]),
        UsageScope::Group(id) => ("group_id = ?", vec![id]),
        UsageScope::Account(id) => ("account_id = ?", vec![id]),
        UsageScope::Member { group_id, user_id } => {
            ("group_id = ? AND user_id = ?", vec![group_id, user_id])
        }
        UsageScope::Enterprise(id) => (
            "group_id IN (SELECT id FROM carpool_groups WHERE enterprise_id = ?)",
            vec![id],
        ),
        // The department and every department below it, as placed now.
        UsageScope::Department(id) => (
            "group_id IN (SELECT id FROM carpool_groups WHERE department_id IN \
             (WITH RECURSIVE sub(id) AS (SELECT ? UNION \
              SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id) \
              SELECT id FROM sub))",
            vec![id],
        ),
    }
}

/// The scope's condition with numbered parameters `?1`, `?2`, ….
fn numbered_scope_filter(scope: &UsageScope) -> (String, Vec<&str>) {
    let (sql, ids) = scope_filter(scope);
    let mut out = String::with_capacity(sql.len() + 4);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("?{n}"));
        } else {
            out.push(ch);
        }
    }
    (out, ids)
}

/// One set of sums per instant `i` (bound as parameter `?{first + i}`),
/// named with the suffix `_{i}`.
fn since_columns(n: usize, first: usize) -> String {
    let mut cols = Vec::with_capacity(n);
    for i in 0..n {
        let p = first + i;
        let when = |expr: &str, name: &str| {
            format!("COALESCE(SUM(CASE WHEN at >= ?{p} THEN {expr} END), 0) AS {name}_{i}")
        };
        cols.push(format!(
            "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
            when("requests", "requests"),
            when("input_tokens", "input_tokens"),
            when("output_tokens", "output_tokens"),
            when(
                "cache_write_5m_tokens + cache_write_1h_tokens",
                "cache_write_tokens"
            ),
            when("cache_write_5m_tokens", "cache_write_5m_tokens"),
            when("cache_write_1h_tokens", "cache_write_1h_tokens"),
            when("cache_read_tokens", "cache_read_tokens"),
            when("cost_micro_usd", "cost_micro_usd"),
            when("errors", "errors"),
            when("estimated", "estimated"),
            when("partial", "partial"),
            refusal_sums(|c| when(c, c)),
        ));
    }
    cols.join(",\n")
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn insert_usage(&self, records: &[UsageRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for r in records {
            sqlx::query(
                "INSERT INTO usage_records (id, at, key_id, user_id, group_id, account_id, model,
                     input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                     cache_read_tokens, cost_micro_usd, latency_ms, status, accuracy,
                     served_model, refusal, ttfb_ms, attempts, failed_over)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&r.id)
            .bind(ms(r.at))
            .bind(&r.key_id)
            .bind(&r.user_id)
            .bind(&r.group_id)
            .bind(&r.account_id)
            .bind(&r.model)
            .bind(int(r.usage.input_tokens)?)
            .bind(int(r.usage.output_tokens)?)
            .bind(int(r.usage.cache_write_5m_tokens)?)
            .bind(int(r.usage.cache_write_1h_tokens)?)
            .bind(int(r.usage.cache_read_tokens)?)
            .bind(r.cost_micro_usd)
            .bind(int(r.latency_ms)?)
            .bind(r.status)
            .bind(r.accuracy.as_str())
            .bind(&r.served_model)
            .bind(r.refusal.map(RefusalReason::as_str))
            .bind(r.ttfb_ms.map(int).transpose()?)
            .bind(r.attempts)
            .bind(failed_over_col(&r.failed_over)?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn usage_report(&self, query: &UsageQuery) -> StoreResult<UsageReport> {
        let (scope_sql, ids) = scope_filter(&query.scope);
        // Stored times are whole milliseconds; rounding the bounds up keeps
        // `from` inclusive and `to` exclusive exactly.
        let mut filter = scope_sql.to_owned();
        let mut bounds = Vec::new();
        if let Some(from) = query.from {
            filter.push_str(" AND at >= ?");
            bounds.push(ms_ceil(from));
        }
        if let Some(to) = query.to {
            filter.push_str(" AND at < ?");
            bounds.push(ms_ceil(to));
        }
        let sql = match query.group_by {
            None => format!("SELECT {} FROM usage_facts WHERE {filter}", *TOTALS_SQL),
            Some(g) => format!(
                "SELECT {} AS bucket, {} FROM usage_facts WHERE {filter}
                 GROUP BY bucket ORDER BY bucket",
                bucket_sql(g),
                *TOTALS_SQL
            ),
        };
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        for b in bounds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        usage_report(&rows, query.group_by.is_some())
    }

    /// Every instant's sums in one pass over the scope's rows (the
    /// `(scope, at)` indexes narrow it to the scope).
    async fn usage_since(
        &self,
        scope: &UsageScope,
        since: &[DateTime<Utc>],
    ) -> StoreResult<Vec<UsageTotals>> {
        if since.is_empty() {
            return Ok(Vec::new());
        }
        // The scope's ids are ?1.., the instants follow.
        let (filter, ids) = numbered_scope_filter(scope);
        let sql = format!(
            "SELECT {} FROM usage_facts WHERE {filter}",
            since_columns(since.len(), ids.len() + 1)
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        for t in since {
            q = q.bind(ms_ceil(*t));
        }
        let row = q.fetch_one(&self.pool).await.map_err(db_err)?;
        (0..since.len()).map(|i| since_totals(&row, i)).collect()
    }
}

#[async_trait]
impl RequestLogStore for SqliteStore {
    async fn requests(&self, query: &RequestQuery) -> StoreResult<RequestPage> {
        let stmt = request_log::requests('?', "id", numbered_scope_filter(&query.scope), query);
        let mut q = sqlx::query(&stmt.sql);
        for p in stmt.params {
            q = match p {
                Param::Text(s) => q.bind(s),
                Param::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        let rows = rows
            .iter()
            .map(usage_record_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(query.page(rows))
    }

    async fn roll_up_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        // One writer at a time (`begin_write`), so the records folded are
        // exactly the ones deleted.
        let before = ms_ceil(before);
        let mut tx = self.begin_write().await?;
        sqlx::query(&request_log::roll_up("usage_records WHERE at < ?1"))
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let gone = sqlx::query("DELETE FROM usage_records WHERE at < ?1")
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        tx.commit().await.map_err(db_err)?;
        Ok(gone)
    }
}

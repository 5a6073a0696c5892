//! Usage records and reports, aggregated by the database.
//!
//! The sums equal [`UsageQuery::aggregate`] over the same records: buckets
//! are formatted as it formats them and sorted by bytes (`COLLATE "C"`),
//! not by the database's locale. `SUM` of `BIGINT` is `NUMERIC` in
//! PostgreSQL; casting back to `BIGINT` fails on overflow rather than
//! wrapping, as SQLite's integer sums do.

use std::sync::LazyLock;

use aicarpool_core::store::{RequestLogStore, StoreResult, UsageStore};
use aicarpool_core::usage::{
    RefusalReason, RequestPage, RequestQuery, UsageGroupBy, UsageQuery, UsageRecord, UsageReport,
    UsageScope, UsageTotals,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::codec::{db_err, int, ms, ms_ceil, ReadRow};
use super::PostgresStore;
use crate::codec::request_log::{self, Param};
use crate::codec::rows::{
    failed_over_col, refusal_sums, since_totals, usage_record_row, usage_report,
};

/// The bucket of each `UsageGroupBy`, written to match
/// [`UsageQuery::bucket`] exactly. `at` is unix milliseconds; it is
/// floored to the second (exactly, in `NUMERIC`) before becoming a UTC
/// time, so records just before midnight stay on their day.
fn bucket_sql(group_by: UsageGroupBy) -> &'static str {
    match group_by {
        UsageGroupBy::Day => {
            "to_char(to_timestamp(floor(at / 1000.0)) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
        UsageGroupBy::Hour => {
            "to_char(to_timestamp(floor(at / 1000.0)) AT TIME ZONE 'UTC', \
             'YYYY-MM-DD\"T\"HH24\":00:00Z\"')"
        }
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
        "COALESCE(SUM(requests), 0)::BIGINT AS requests,
    COALESCE(SUM(input_tokens), 0)::BIGINT AS input_tokens,
    COALESCE(SUM(output_tokens), 0)::BIGINT AS output_tokens,
    COALESCE(SUM(cache_write_5m_tokens + cache_write_1h_tokens), 0)::BIGINT
        AS cache_write_tokens,
    COALESCE(SUM(cache_write_5m_tokens), 0)::BIGINT AS cache_write_5m_tokens,
    COALESCE(SUM(cache_write_1h_tokens), 0)::BIGINT AS cache_write_1h_tokens,
    COALESCE(SUM(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
    COALESCE(SUM(cost_micro_usd), 0)::BIGINT AS cost_micro_usd,
    COALESCE(SUM(errors), 0)::BIGINT AS errors,
    COALESCE(SUM(estimated), 0)::BIGINT AS estimated,
    COALESCE(SUM(partial), 0)::BIGINT AS partial,
    {}",
        refusal_sums(|c| format!("COALESCE(SUM({c}), 0)::BIGINT AS {c}"))
    )
});

/// The `WHERE` condition of a scope, its ids bound from parameter
/// `$first` on, and those ids.
fn scope_filter(scope: &UsageScope, first: usize) -> (String, Vec<&str>) {
    let (p, q) = (first, first + 1);
    match scope {
        UsageScope::Key(id) => (format!("key_id = ${p}"), vec![id]),
        UsageScope::User(id) => (format!("user_id = ${p}"), vec![id]),
        UsageScope::Group(id) => (format!("group_id = ${p}"), vec![id]),
        UsageScope::Account(id) => (format!("account_id = ${p}"), vec![id]),
        UsageScope::Member { group_id, user_id } => (
            format!("group_id = ${p} AND user_id = ${q}"),
            vec![group_id, user_id],
        ),
        UsageScope::Enterprise(id) => (
            format!("group_id IN (SELECT id FROM carpool_groups WHERE enterprise_id = ${p})"),
            vec![id],
        ),
        // The department and every department below it, as placed now.
        UsageScope::Department(id) => (
            format!(
                "group_id IN (SELECT id FROM carpool_groups WHERE department_id IN \
                 (WITH RECURSIVE sub(id) AS (SELECT ${p}::text UNION \
                  SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id) \
                  SELECT id FROM sub))"
            ),
            vec![id],
        ),
    }
}

/// One set of sums per instant `i` (bound as parameter `${first + i}`),
/// named with the suffix `_{i}`.
fn since_columns(n: usize, first: usize) -> String {
    let mut cols = Vec::with_capacity(n);
    for i in 0..n {
        let p = first + i;
        let sum = |expr: &str, name: &str| {
            format!("COALESCE(SUM({expr}) FILTER (WHERE at >= ${p}), 0)::BIGINT AS {name}_{i}")
        };
        cols.push(format!(
            "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
            sum("requests", "requests"),
            sum("input_tokens", "input_tokens"),
            sum("output_tokens", "output_tokens"),
            sum(
                "cache_write_5m_tokens + cache_write_1h_tokens",
                "cache_write_tokens"
            ),
            sum("cache_write_5m_tokens", "cache_write_5m_tokens"),
            sum("cache_write_1h_tokens", "cache_write_1h_tokens"),
            sum("cache_read_tokens", "cache_read_tokens"),
            sum("cost_micro_usd", "cost_micro_usd"),
            sum("errors", "errors"),
            sum("estimated", "estimated"),
            sum("partial", "partial"),
            refusal_sums(|c| sum(c, c)),
        ));
    }
    cols.join(",\n")
}

/// A batch as one array per column, for `UNNEST`.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<&'a str>,
    at: Vec<i64>,
    key_id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    group_id: Vec<&'a str>,
    account_id: Vec<Option<&'a str>>,
    model: Vec<&'a str>,
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    cache_write_5m_tokens: Vec<i64>,
    cache_write_1h_tokens: Vec<i64>,
    cache_read_tokens: Vec<i64>,
    cost_micro_usd: Vec<i64>,
    latency_ms: Vec<i64>,
    status: Vec<i32>,
    accuracy: Vec<&'static str>,
    served_model: Vec<Option<&'a str>>,
    refusal: Vec<Option<&'static str>>,
    ttfb_ms: Vec<Option<i64>>,
    attempts: Vec<i32>,
    failed_over: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    fn of(records: &'a [UsageRecord]) -> StoreResult<Self> {
        let mut c = Columns::default();
        for r in records {
            c.id.push(&r.id);
            c.at.push(ms(r.at));
            c.key_id.push(&r.key_id);
            c.user_id.push(&r.user_id);
            c.group_id.push(&r.group_id);
            c.account_id.push(r.account_id.as_deref());
            c.model.push(&r.model);
            c.input_tokens.push(int(r.usage.input_tokens)?);
            c.output_tokens.push(int(r.usage.output_tokens)?);
            c.cache_write_5m_tokens
                .push(int(r.usage.cache_write_5m_tokens)?);
            c.cache_write_1h_tokens
                .push(int(r.usage.cache_write_1h_tokens)?);
            c.cache_read_tokens.push(int(r.usage.cache_read_tokens)?);
            c.cost_micro_usd.push(r.cost_micro_usd);
            c.latency_ms.push(int(r.latency_ms)?);
            c.status.push(i32::from(r.status));
            c.accuracy.push(r.accuracy.as_str());
            c.served_model.push(r.served_model.as_deref());
            c.refusal.push(r.refusal.map(RefusalReason::as_str));
            c.ttfb_ms.push(r.ttfb_ms.map(int).transpose()?);
            c.attempts
                .push(i32::try_from(r.attempts).unwrap_or(i32::MAX));
            c.failed_over.push(failed_over_col(&r.failed_over)?);
        }
        Ok(c)
    }
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn insert_usage(&self, records: &[UsageRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        // The whole batch is one statement (atomic, one round trip). Rows
        // go in in order, so of two with one id in the batch the first
        // wins, as with one `INSERT` per record.
        let c = Columns::of(records)?;
        sqlx::query(
            "INSERT INTO usage_records (id, at, key_id, user_id, group_id, account_id, model,
                 input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                 cache_read_tokens, cost_micro_usd, latency_ms, status, accuracy,
                 served_model, refusal, ttfb_ms, attempts, failed_over)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[],
                 $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::integer[],
                 $16::text[], $17::text[], $18::text[], $19::bigint[], $20::integer[],
                 $21::text[])
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(c.id)
        .bind(c.at)
        .bind(c.key_id)
        .bind(c.user_id)
        .bind(c.group_id)
        .bind(c.account_id)
        .bind(c.model)
        .bind(c.input_tokens)
        .bind(c.output_tokens)
        .bind(c.cache_write_5m_tokens)
        .bind(c.cache_write_1h_tokens)
        .bind(c.cache_read_tokens)
        .bind(c.cost_micro_usd)
        .bind(c.latency_ms)
        .bind(c.status)
        .bind(c.accuracy)
        .bind(c.served_model)
        .bind(c.refusal)
        .bind(c.ttfb_ms)
        .bind(c.attempts)
        .bind(c.failed_over)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn usage_report(&self, query: &UsageQuery) -> StoreResult<UsageReport> {
        let (mut filter, ids) = scope_filter(&query.scope, 1);
        // Stored times are whole milliseconds; rounding the bounds up keeps
        // `from` inclusive and `to` exclusive exactly.
        let mut bounds = Vec::new();
        for (bound, op) in [(query.from, ">="), (query.to, "<")] {
            if let Some(t) = bound {
                bounds.push(ms_ceil(t));
                let n = ids.len() + bounds.len();
                filter.push_str(&format!(" AND at {op} ${n}"));
            }
        }
        let sql = match query.group_by {
            None => format!("SELECT {} FROM usage_facts WHERE {filter}", *TOTALS_SQL),
            // The collation is the bucket's own, so grouping and sorting
            // both see bytes.
            Some(g) => format!(
                "SELECT ({}) COLLATE \"C\" AS bucket, {}
                 FROM usage_facts WHERE {filter}
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
        // The scope's ids are $1.., the instants follow.
        let (filter, ids) = scope_filter(scope, 1);
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
impl RequestLogStore for PostgresStore {
    async fn requests(&self, query: &RequestQuery) -> StoreResult<RequestPage> {
        // Ids order by bytes, as the other backends order them.
        let stmt = request_log::requests(
            '$',
            "id COLLATE \"C\"",
            scope_filter(&query.scope, 1),
            query,
        );
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
        // Deleting and folding in one statement: an instance rolling up at
        // the same time waits on the rows this one deletes and then skips
        // them, so no record is folded twice.
        let sql = format!(
            "WITH gone AS (DELETE FROM usage_records WHERE at < $1 RETURNING *),
                  folded AS ({} RETURNING 1)
             SELECT COUNT(*) AS n FROM gone",
            request_log::roll_up("gone")
        );
        let row = sqlx::query(&sql)
            .bind(ms_ceil(before))
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        row.int("n")
    }
}

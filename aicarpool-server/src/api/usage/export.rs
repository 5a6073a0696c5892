//! The report answer with unpriced models flagged, and its CSV export.

use aicarpool_core::pricing::Pricing;
use aicarpool_core::usage::{UsageGroupBy, UsageQuery, UsageReport, UsageScope, UsageTotals};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::super::caller::Caller;
use super::super::views::UsageView;
use super::{usage_query, UsageParams};
use crate::error::ApiResult;
use crate::state::AppState;

/// `{rows, totals}` plus the models that were used but have no price.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportView {
    #[serde(flatten)]
    pub report: UsageView,
    /// Models with usage in this report that cost 0 because no price is
    /// known for them (free models are not listed). Their cost is missing
    /// from the totals until a price is configured (`AICARPOOL_PRICES`).
    pub unpriced_models: Vec<String>,
}

/// The report of `query` with its unpriced models.
pub(super) async fn report_view(state: &AppState, query: &UsageQuery) -> ApiResult<ReportView> {
    let report = state.store.usage_report(query).await?;
    let unpriced_models = unpriced_models(state, query, &report).await?;
    Ok(ReportView {
        report: UsageView::from(&report),
        unpriced_models,
    })
}

/// Whether a bucket's usage went unpriced: tokens but no cost, on a model
/// the table does not price at zero on purpose.
fn unpriced(pricing: &Pricing, model: &str, t: &UsageTotals) -> bool {
    let tokens = t.input_tokens + t.output_tokens + t.cache_write_tokens + t.cache_read_tokens;
    tokens > 0 && t.cost_micro_usd == 0 && !pricing.is_free(model)
}

async fn unpriced_models(
    state: &AppState,
    query: &UsageQuery,
    report: &UsageReport,
) -> ApiResult<Vec<String>> {
    let by_model = if query.group_by == Some(UsageGroupBy::Model) {
        report.clone()
    } else {
        let q = UsageQuery {
            group_by: Some(UsageGroupBy::Model),
            ..query.clone()
        };
        state.store.usage_report(&q).await?
    };
    let pricing = state.gateway.pricing();
    Ok(by_model
        .rows
        .iter()
        .filter(|r| unpriced(pricing, &r.bucket, &r.totals))
        .map(|r| r.bucket.clone())
        .collect())
}

/// `GET /api/usage/export.csv`: the same query as `GET /api/usage`, one
/// line per bucket (one line `all` without `groupBy`).
#[utoipa::path(get, path = "/api/usage/export.csv", tag = "usage",
    responses((status = 200, description = "text/csv: bucket, requests, tokens by kind, costUsd, errors, unpriced")))]
pub async fn export_csv(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<UsageParams>, QueryRejection>,
) -> ApiResult<Response> {
    let query = usage_query(&state, &caller, params).await?;
    let report = state.store.usage_report(&query).await?;
    let unpriced = unpriced_models(&state, &query, &report).await?;
    let is_model = query.group_by == Some(UsageGroupBy::Model);
    let mut out = String::from(
        "bucket,requests,inputTokens,outputTokens,cacheWriteTokens,cacheReadTokens,costUsd,errors,unpriced\n",
    );
    let mut line = |bucket: &str, t: &UsageTotals, unpriced: bool| {
        let fields = [
            field(bucket),
            t.requests.to_string(),
            t.input_tokens.to_string(),
            t.output_tokens.to_string(),
            t.cache_write_tokens.to_string(),
            t.cache_read_tokens.to_string(),
            usd(t.cost_micro_usd),
            t.errors.to_string(),
            unpriced.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    if query.group_by.is_none() {
        line("all", &report.totals, !unpriced.is_empty());
    }
    for row in &report.rows {
        let flagged = is_model && unpriced.contains(&row.bucket);
        line(&row.bucket, &row.totals, flagged);
    }
    let filename = format!(
        "attachment; filename=\"aicarpool-usage-{}.csv\"",
        scope_name(&query.scope)
    );
    let mut resp = out.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn scope_name(scope: &UsageScope) -> String {
    match scope {
        UsageScope::Key(id) => format!("key-{id}"),
        UsageScope::User(id) => format!("user-{id}"),
        UsageScope::Group(id) => format!("group-{id}"),
        UsageScope::Account(id) => format!("account-{id}"),
        UsageScope::Member { group_id, user_id } => format!("member-{group_id}-{user_id}"),
        UsageScope::Department(id) => format!("department-{id}"),
        UsageScope::Enterprise(id) => format!("enterprise-{id}"),
    }
}

/// Exact micro-USD as dollars with six decimals.
fn usd(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let m = micro.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// One CSV field. Buckets may hold a client's model name, so quote what
/// needs quoting and defuse spreadsheet formulas (`=`, `+`, `-`, `@`).
pub(crate) fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("claude-sonnet-4-5"), "claude-sonnet-4-5");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
        assert_eq!(usd(1_845), "0.001845");
        assert_eq!(usd(50_000_000), "50.000000");
    }
}

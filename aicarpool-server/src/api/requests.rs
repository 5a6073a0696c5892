//! The request log: `GET /api/requests`, the per-request records the
//! gateway wrote, newest first, a page at a time. Bodies are never stored,
//! so none can be shown.
//!
//! Who may see a scope is decided as for usage reports (a member their
//! own requests, group admins their group's, …).

use aicarpool_core::usage::{
    RequestCursor, RequestQuery, StatusFilter, UsageRecord, MAX_REQUEST_PAGE,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::usage::{scope, time_range};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Rows per page when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestParams {
    scope: Option<String>,
    id: Option<String>,
    status: Option<String>,
    model: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// One request as the log shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestRow {
    pub id: String,
    pub at: DateTime<Utc>,
    pub group_id: String,
    pub user_id: String,
    pub key_id: String,
    pub account_id: Option<String>,
    /// The model the client asked for.
    pub model: String,
    /// The model the account was sent, when a map or translation changed it.
    pub served_model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_usd: f64,
    /// `exact`, `partial` (the answer broke off) or `estimated`.
    pub accuracy: &'static str,
    /// The status the client saw.
    pub status: u16,
    /// Set when the gateway refused the request itself: `rate-limit`,
    /// `quota`, `budget`, `concurrency` or `fair-share`.
    pub refusal: Option<&'static str>,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    /// Upstream accounts tried, the one that answered included.
    pub attempts: u32,
    /// The accounts tried before `accountId`, in order.
    pub failed_over: Vec<String>,
}

impl From<UsageRecord> for RequestRow {
    fn from(r: UsageRecord) -> Self {
        RequestRow {
            cost_usd: r.cost_micro_usd as f64 / 1_000_000.0,
            accuracy: r.accuracy.as_str(),
            refusal: r.refusal.map(|r| r.as_str()),
            input_tokens: r.usage.input_tokens,
            output_tokens: r.usage.output_tokens,
            cache_write_5m_tokens: r.usage.cache_write_5m_tokens,
            cache_write_1h_tokens: r.usage.cache_write_1h_tokens,
            cache_read_tokens: r.usage.cache_read_tokens,
            id: r.id,
            at: r.at,
            group_id: r.group_id,
            user_id: r.user_id,
            key_id: r.key_id,
            account_id: r.account_id,
            model: r.model,
            served_model: r.served_model,
            status: r.status,
            latency_ms: r.latency_ms,
            ttfb_ms: r.ttfb_ms,
            attempts: r.attempts,
            failed_over: r.failed_over,
        }
    }
}

/// A page of the log and where the next one starts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestLogView {
    pub rows: Vec<RequestRow>,
    /// Pass as `cursor` for the older rows; `null` on the last page.
    pub next: Option<String>,
}

/// `scope` and `id` as for `GET /api/usage` (default: the caller's own
/// requests). `status` is `ok`, `error`, `refused` or a code; `model`
/// matches the model asked for or served; `limit` is 1..=500 (default 50).
#[utoipa::path(get, path = "/api/requests", tag = "usage",
    responses((status = 200, body = RequestLogView)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<RequestParams>, QueryRejection>,
) -> ApiResult<Json<RequestLogView>> {
    let Query(p) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let tz = state.config.timezone;
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            StatusFilter::parse(s).ok_or_else(|| {
                ApiError::bad_request("status must be ok, error, refused or a status code")
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_REQUEST_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_REQUEST_PAGE}"
        )));
    }
    let cursor = p
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            RequestCursor::decode(c)
                .ok_or_else(|| ApiError::bad_request("cursor is not one this log handed out"))
        })
        .transpose()?;
    let (from, to) = time_range(p.from.as_deref(), p.to.as_deref(), tz)?;
    let query = RequestQuery {
        scope: scope(&state, &caller, p.scope.as_deref(), p.id).await?,
        status,
        model: p.model.filter(|m| !m.is_empty()),
        from,
        to,
        limit,
        cursor,
    };
    let page = state.store.requests(&query).await?;
    Ok(Json(RequestLogView {
        rows: page.rows.into_iter().map(RequestRow::from).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}

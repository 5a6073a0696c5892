//! The request log: the records of one scope, newest first, a page at a
//! time.

use chrono::{DateTime, Utc};

use super::{UsageRecord, UsageScope};

/// Most rows one page holds.
pub const MAX_REQUEST_PAGE: usize = 500;

/// Which answers a request-log query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Status below 400.
    Ok,
    /// Status 400 or above, refusals included.
    Error,
    /// Refused by the gateway itself (a limit, a quota, a budget).
    Refused,
    /// One status code.
    Code(u16),
}

impl StatusFilter {
    /// `ok`, `error`, `refused` or a status code.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(StatusFilter::Ok),
            "error" => Some(StatusFilter::Error),
            "refused" => Some(StatusFilter::Refused),
            code => code
                .parse()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(StatusFilter::Code),
        }
    }

    pub fn keeps(self, r: &UsageRecord) -> bool {
        match self {
            StatusFilter::Ok => r.status < 400,
            StatusFilter::Error => r.status >= 400,
            StatusFilter::Refused => r.refusal.is_some(),
            StatusFilter::Code(c) => r.status == c,
        }
    }
}

/// Where the next page starts: just after the last row of this one.
/// Rows are ordered by time, then id, both descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCursor {
    /// Unix milliseconds, the precision every backend keeps.
    pub at_ms: i64,
    pub id: String,
}

impl RequestCursor {
    pub fn after(r: &UsageRecord) -> Self {
        RequestCursor {
            at_ms: r.at.timestamp_millis(),
            id: r.id.clone(),
        }
    }

    /// Whether `r` comes after the cursor in the log's order.
    pub fn precedes(&self, r: &UsageRecord) -> bool {
        let at = r.at.timestamp_millis();
        at < self.at_ms || (at == self.at_ms && r.id < self.id)
    }

    /// The opaque form the API hands out: `<ms>.<id>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at_ms, self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (at, id) = s.split_once('.')?;
        let at_ms = at.parse().ok()?;
        (!id.is_empty() && id.len() <= crate::bounds::MAX_ID_LEN).then(|| RequestCursor {
            at_ms,
            id: id.to_owned(),
        })
    }
}

/// A request-log query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQuery {
    pub scope: UsageScope,
    pub status: Option<StatusFilter>,
    /// Matches the model asked for or the model served.
    pub model: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    /// Rows per page, at most [`MAX_REQUEST_PAGE`].
    pub limit: usize,
    pub cursor: Option<RequestCursor>,
}

impl RequestQuery {
    /// Every filter but the scope (which may need the organization).
    pub fn keeps(&self, r: &UsageRecord) -> bool {
        self.status.is_none_or(|s| s.keeps(r))
            && self
                .model
                .as_deref()
                .is_none_or(|m| r.model == m || r.served_model.as_deref() == Some(m))
            && self.from.is_none_or(|f| r.at >= f)
            && self.to.is_none_or(|t| r.at < t)
            && self.cursor.as_ref().is_none_or(|c| c.precedes(r))
    }

    /// The page size, within bounds.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_REQUEST_PAGE)
    }

    /// Cuts rows already in log order (one more than a page was asked
    /// for, when there is more) into a page.
    pub fn page(&self, mut rows: Vec<UsageRecord>) -> RequestPage {
        let size = self.page_size();
        let next = (rows.len() > size).then(|| {
            rows.truncate(size);
            rows.last().map(RequestCursor::after)
        });
        RequestPage {
            rows,
            next: next.flatten(),
        }
    }
}

/// One page of the request log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPage {
    pub rows: Vec<UsageRecord>,
    /// Set when there are older rows.
    pub next: Option<RequestCursor>,
}

/// Sorts rows into log order: newest first, ties by id descending.
pub(crate) fn log_order(rows: &mut [UsageRecord]) {
    rows.sort_by(|a, b| (b.at.timestamp_millis(), &b.id).cmp(&(a.at.timestamp_millis(), &a.id)));
}

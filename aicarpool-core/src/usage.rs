//! Token usage, usage records and reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod fact;
mod log;
mod writer;

pub use fact::{RollupKey, UsageFact, UsageRollup};
pub(crate) use log::log_order;
pub use log::{RequestCursor, RequestPage, RequestQuery, StatusFilter, MAX_REQUEST_PAGE};
pub use writer::{UsageWriter, UsageWriterConfig};

/// Tokens of one request, split the way prices are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Cache writes with the default 5-minute lifetime.
    pub cache_write_5m_tokens: u64,
    /// Cache writes with the 1-hour lifetime (priced higher).
    pub cache_write_1h_tokens: u64,
    pub cache_read_tokens: u64,
}

impl Usage {
    pub fn cache_write_tokens(&self) -> u64 {
        self.cache_write_5m_tokens + self.cache_write_1h_tokens
    }

    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_write_tokens() + self.cache_read_tokens
    }
}

/// How much of a request's usage was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accuracy {
    /// The upstream reported final usage.
    Exact,
    /// The stream ended early; this is what was seen.
    Partial,
    /// Counted by the gateway, not reported by the upstream.
    Estimated,
}

impl Accuracy {
    pub fn as_str(self) -> &'static str {
        match self {
            Accuracy::Exact => "exact",
            Accuracy::Partial => "partial",
            Accuracy::Estimated => "estimated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(Accuracy::Exact),
            "partial" => Some(Accuracy::Partial),
            "estimated" => Some(Accuracy::Estimated),
            _ => None,
        }
    }
}

/// Why the gateway itself refused a request (not an upstream's answer):
/// the `x-aicarpool-refusal` header's value and the request log's
/// `refusal` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RefusalReason {
    /// A requests- or tokens-per-minute limit.
    RateLimit,
    /// A token or cost quota of a key, a member or a group.
    Quota,
    /// A department's or an enterprise's budget.
    Budget,
    /// A concurrency limit.
    Concurrency,
    /// The member used more than their share of a subscription's window.
    FairShare,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 5] = [
        RefusalReason::RateLimit,
        RefusalReason::Quota,
        RefusalReason::Budget,
        RefusalReason::Concurrency,
        RefusalReason::FairShare,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::RateLimit => "rate-limit",
            RefusalReason::Quota => "quota",
            RefusalReason::Budget => "budget",
            RefusalReason::Concurrency => "concurrency",
            RefusalReason::FairShare => "fair-share",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Most accounts a record names in its failover path; a request tries
/// only a few (`GatewayConfig::max_attempts`).
pub const MAX_FAILED_OVER: usize = 16;

/// One request, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    pub id: String,
    pub at: DateTime<Utc>,
    pub key_id: String,
    pub user_id: String,
    pub group_id: String,
    /// The account that served (or last failed); `None` when none was tried.
    pub account_id: Option<String>,
    /// The model the client asked for.
    pub model: String,
    pub usage: Usage,
    pub cost_micro_usd: i64,
    pub latency_ms: u64,
    /// HTTP status the client saw.
    pub status: u16,
    pub accuracy: Accuracy,
    /// The model the account was sent, when it differs from `model`
    /// (a model map or a translation chose it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model: Option<String>,
    /// Set when the gateway refused the request itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalReason>,
    /// Time until the answer's head was ready for the client; `None` when
    /// no upstream answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<u64>,
    /// Upstream accounts tried, the one that answered included.
    #[serde(default)]
    pub attempts: u32,
    /// The accounts tried before `account_id`, in order, when the request
    /// failed over: the request log's failover path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_over: Vec<String>,
}

impl UsageRecord {
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }

    /// The record with every string within its bound (see
    /// [`crate::bounds`]): what the writer stores, whoever built it.
    pub fn bounded(mut self) -> Self {
        use crate::bounds::{clip_owned, MAX_ID_LEN, MAX_MODEL_LEN};
        clip_owned(&mut self.model, MAX_MODEL_LEN);
        for id in [
            &mut self.id,
            &mut self.key_id,
            &mut self.user_id,
            &mut self.group_id,
        ] {
            clip_owned(id, MAX_ID_LEN);
        }
        if let Some(a) = &mut self.account_id {
            clip_owned(a, MAX_ID_LEN);
        }
        if let Some(m) = &mut self.served_model {
            clip_owned(m, MAX_MODEL_LEN);
        }
        self.failed_over.truncate(MAX_FAILED_OVER);
        for a in &mut self.failed_over {
            clip_owned(a, MAX_ID_LEN);
        }
        self
    }
}

/// Whose usage a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageScope {
    Key(String),
    User(String),
    Group(String),
    Account(String),
    /// One member's keys in one group (what a member limit counts).
    Member {
        group_id: String,
        user_id: String,
    },
    /// The groups of a department and of every department below it, as
    /// they are placed now. Stores resolve it against the organization.
    Department(String),
    /// Every group of an enterprise. Stores resolve it against the
    /// organization.
    Enterprise(String),
}

/// How report rows are bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroupBy {
    Day,
    Hour,
    Model,
    User,
    Key,
    Account,
}

/// A report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub scope: UsageScope,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub group_by: Option<UsageGroupBy>,
}

/// Sums over a set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_write_tokens: u64,
    /// Of `cache_write_tokens`: written for 5 minutes, and for 1 hour
    /// (priced 1.25× and 2× input).
    #[serde(default)]
    pub cache_write_5m_tokens: u64,
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_micro_usd: i64,
    pub errors: u64,
    /// Records whose usage is [`Accuracy::Estimated`] (no usage reported).
    #[serde(default)]
    pub estimated: u64,
    /// Records whose usage is [`Accuracy::Partial`] (the answer broke off).
    #[serde(default)]
    pub partial: u64,
}

impl UsageTotals {
    pub fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.input_tokens += r.usage.input_tokens;
        self.output_tokens += r.usage.output_tokens;
        self.cache_write_tokens += r.usage.cache_write_tokens();
        self.cache_write_5m_tokens += r.usage.cache_write_5m_tokens;
        self.cache_write_1h_tokens += r.usage.cache_write_1h_tokens;
        self.cache_read_tokens += r.usage.cache_read_tokens;
        self.cost_micro_usd += r.cost_micro_usd;
        self.errors += u64::from(r.is_error());
        self.estimated += u64::from(r.accuracy == Accuracy::Estimated);
        self.partial += u64::from(r.accuracy == Accuracy::Partial);
    }

    /// Adds the sums of `other` (a rollup of many records).
    pub fn merge(&mut self, other: &UsageTotals) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cache_write_5m_tokens += other.cache_write_5m_tokens;
        self.cache_write_1h_tokens += other.cache_write_1h_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cost_micro_usd += other.cost_micro_usd;
        self.errors += other.errors;
        self.estimated += other.estimated;
        self.partial += other.partial;
    }

    /// Cost in USD, for the API.
    pub fn cost_usd(&self) -> f64 {
        self.cost_micro_usd as f64 / 1_000_000.0
    }
}

/// One bucket of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// Day `2026-11-26`, hour `2026-11-26T07:00:00Z`, or the model, user,
    /// key or account id. Empty string when the record had none.
    pub bucket: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// The answer to a [`UsageQuery`]. Rows are sorted by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
    pub totals: UsageTotals,
}

impl UsageQuery {
    /// Whether `r` (a record or a rollup) falls in this query's scope and
    /// time range. Department and enterprise scopes need the
    /// organization: a record alone never matches them (see
    /// [`UsageQuery::aggregate_where`]).
    pub fn matches<F: UsageFact + ?Sized>(&self, r: &F) -> bool {
        let in_scope = match &self.scope {
            UsageScope::Department(_) | UsageScope::Enterprise(_) => false,
            UsageScope::Key(id) => r.key_id() == id,
            UsageScope::User(id) => r.user_id() == id,
            UsageScope::Group(id) => r.group_id() == id,
            UsageScope::Account(id) => r.account_id() == Some(id.as_str()),
            UsageScope::Member { group_id, user_id } => {
                r.group_id() == group_id && r.user_id() == user_id
            }
        };
        in_scope && self.in_range(r)
    }

    /// Whether `r` falls in this query's time range.
    pub fn in_range<F: UsageFact + ?Sized>(&self, r: &F) -> bool {
        let at = r.at();
        self.from.is_none_or(|f| at >= f) && self.to.is_none_or(|t| at < t)
    }

    /// The bucket `r` lands in under this query's `group_by`.
    pub fn bucket<F: UsageFact + ?Sized>(&self, r: &F) -> String {
        match self.group_by {
            None => String::new(),
            Some(UsageGroupBy::Day) => r.at().format("%Y-%m-%d").to_string(),
            Some(UsageGroupBy::Hour) => r.at().format("%Y-%m-%dT%H:00:00Z").to_string(),
            Some(UsageGroupBy::Model) => r.model().to_owned(),
            Some(UsageGroupBy::User) => r.user_id().to_owned(),
            Some(UsageGroupBy::Key) => r.key_id().to_owned(),
            Some(UsageGroupBy::Account) => r.account_id().unwrap_or_default().to_owned(),
        }
    }

    /// Builds a report from records (or rollups), for backends that
    /// aggregate in Rust.
    pub fn aggregate<'a, F: UsageFact + ?Sized + 'a>(
        &self,
        records: impl IntoIterator<Item = &'a F>,
    ) -> UsageReport {
        self.aggregate_where(records, |r| self.matches(r))
    }

    /// Like [`UsageQuery::aggregate`], with the scope decided by `in_scope`
    /// (a backend that resolved a department or an enterprise to its
    /// groups); the time range still applies.
    pub fn aggregate_where<'a, F: UsageFact + ?Sized + 'a>(
        &self,
        records: impl IntoIterator<Item = &'a F>,
        in_scope: impl Fn(&F) -> bool,
    ) -> UsageReport {
        let mut rows = std::collections::BTreeMap::<String, UsageTotals>::new();
        let mut totals = UsageTotals::default();
        for r in records
            .into_iter()
            .filter(|r| in_scope(r) && self.in_range(*r))
        {
            r.add_to(&mut totals);
            if self.group_by.is_some() {
                r.add_to(rows.entry(self.bucket(r)).or_default());
            }
        }
        UsageReport {
            rows: rows
                .into_iter()
                .map(|(bucket, totals)| UsageRow { bucket, totals })
                .collect(),
            totals,
        }
    }
}

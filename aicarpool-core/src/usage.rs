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

    /// The reason's place in [`RefusalReason::ALL`], which lists them in
    /// declaration order.
    fn index(self) -> usize {
        self as usize
    }
}

/// How many requests the gateway refused, for each reason: serialized as
/// an object with every reason (`as_str`) as a key, zeros included, so a
/// report reads the same whichever reasons occurred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounts([u64; RefusalReason::ALL.len()]);

impl RefusalCounts {
    pub fn get(&self, reason: RefusalReason) -> u64 {
        self.0[reason.index()]
    }

    /// Counts `n` more refusals for `reason`.
    pub fn add(&mut self, reason: RefusalReason, n: u64) {
        self.0[reason.index()] += n;
    }

    pub fn merge(&mut self, other: &RefusalCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    /// Every reason with its count, in [`RefusalReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (RefusalReason, u64)> + '_ {
        RefusalReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }

    /// Refusals of every reason together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl FromIterator<(RefusalReason, u64)> for RefusalCounts {
    fn from_iter<I: IntoIterator<Item = (RefusalReason, u64)>>(iter: I) -> Self {
        let mut counts = Self::default();
        for (r, n) in iter {
            counts.add(r, n);
        }
        counts
    }
}

impl Serialize for RefusalCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (r, n) in self.iter() {
            map.serialize_entry(r.as_str(), &n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RefusalCounts {
    /// Missing reasons read as zero; a reason this version does not know
    /// (written by a newer one) is skipped rather than failing the whole
    /// value.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, u64>::deserialize(deserializer)?;
        Ok(map
            .iter()
            .filter_map(|(k, n)| RefusalReason::parse(k).map(|r| (r, *n)))
            .collect())
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
    /// A request of the member's key, answered now with exact usage and
    /// status 200, on no account; set the other fields as they were.
    pub fn new(
        key_id: &str,
        user_id: &str,
        group_id: &str,
        model: &str,
        usage: Usage,
        cost_micro_usd: i64,
    ) -> Self {
        Self {
            id: crate::id::new_id(),
            at: chrono::Utc::now(),
            key_id: key_id.to_owned(),
            user_id: user_id.to_owned(),
            group_id: group_id.to_owned(),
            account_id: None,
            model: model.to_owned(),
            usage,
            cost_micro_usd,
            latency_ms: 0,
            status: 200,
            accuracy: Accuracy::Exact,
            served_model: None,
            refusal: None,
            ttfb_ms: None,
            attempts: 0,
            failed_over: Vec::new(),
        }
    }

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
    /// Of `errors`: the requests the gateway refused itself, by reason.
    #[serde(default)]
    pub refusals: RefusalCounts,
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
        if let Some(reason) = r.refusal {
            self.refusals.add(reason, 1);
        }
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
        self.refusals.merge(&other.refusals);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_count() {
        for (i, r) in RefusalReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let counts: RefusalCounts = RefusalReason::ALL
            .into_iter()
            .zip(1..)
            .chain([(RefusalReason::Quota, 10)])
            .collect();
        assert_eq!(counts.get(RefusalReason::RateLimit), 1);
        assert_eq!(counts.get(RefusalReason::Quota), 12);
        assert_eq!(counts.get(RefusalReason::FairShare), 5);
        assert_eq!(counts.total(), 25);
    }

    #[test]
    fn refusals_serialize_with_every_reason_and_read_back() {
        let mut t = UsageTotals::default();
        t.refusals.add(RefusalReason::FairShare, 2);
        let v = serde_json::to_value(t).unwrap();
        assert_eq!(
            v["refusals"],
            serde_json::json!({
                "rate-limit": 0, "quota": 0, "budget": 0, "concurrency": 0, "fair-share": 2
            })
        );
        assert_eq!(serde_json::from_value::<UsageTotals>(v).unwrap(), t);

        // Totals written before refusals were counted read as none; a
        // reason unknown here is skipped.
        let old = serde_json::json!({
            "requests": 3, "inputTokens": 1, "outputTokens": 1, "cacheWriteTokens": 0,
            "cacheReadTokens": 0, "costMicroUsd": 5, "errors": 1
        });
        let read: UsageTotals = serde_json::from_value(old).unwrap();
        assert_eq!(
            (read.requests, read.refusals),
            (3, RefusalCounts::default())
        );
        let newer: RefusalCounts =
            serde_json::from_value(serde_json::json!({"quota": 4, "someday": 9})).unwrap();
        assert_eq!(newer.get(RefusalReason::Quota), 4);
        assert_eq!(newer.total(), 4);
    }
}

//! Member limits: admission, concurrency leases, quota reservations and
//! their settlement.
//!
//! A request is checked against every [`Scope`] it belongs to — its key,
//! its member across keys, its group, and (with enterprise mode) its
//! department and enterprise — and is admitted only if all of them allow
//! it. Admission takes, atomically across those scopes, one request slot
//! of the rolling minute, a concurrency slot and a *reservation*: an upper
//! bound of the request's tokens and cost. Settlement replaces the
//! reservation with what the upstream reported, so concurrent requests
//! cannot spend what others have already reserved.
//!
//! A scope is admitted while it still has room; the request that takes the
//! last of it may run past the limit by at most its own reservation. That
//! keeps the whole budget usable and bounds the overshoot.
//!
//! The [`Limiter`] trait lets a shared backend (Redis) replace the
//! in-memory [`InMemoryLimiter`] for several gateway instances.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::limits::KeyLimits;
use crate::store::UsageStore;
use crate::usage::{RefusalReason, Usage, UsageScope, UsageWriter};

mod calendar;
mod memory;
mod remaining;
mod state;

pub use calendar::{Bounds, Calendar, Clock, ManualClock, SystemClock, Window};
/// The time zone type limits take (re-exported so embedders need not
/// depend on `chrono-tz` themselves).
pub use chrono_tz::Tz;
pub use memory::{keep_longest, InMemoryLimiter};
pub use remaining::{Headroom, Remaining};
pub use state::window_limits;

/// Who a limit applies to. The order of the variants is the order in
/// which a request's scopes are locked, so admission cannot deadlock.
/// Enterprise mode adds `Department` and `Enterprise` here and to
/// [`Scope::usage_scope`]; the limiter itself does not change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One member key.
    Key(String),
    /// One member across all their keys in one group.
    Member { group_id: String, user_id: String },
    /// A whole group.
    Group(String),
    /// A department with every department below it (its budget).
    Department(String),
    /// A whole enterprise (its budget).
    Enterprise(String),
}

impl Scope {
    /// What the scope is called in refusals.
    pub fn describe(&self) -> &'static str {
        match self {
            Scope::Key(_) => "this key",
            Scope::Member { .. } => "your keys in this group",
            Scope::Group(_) => "this group",
            Scope::Department(_) => "this department",
            Scope::Enterprise(_) => "this enterprise",
        }
    }

    /// Short name for headers: `key`, `member`, `group`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Key(_) => "key",
            Scope::Member { .. } => "member",
            Scope::Group(_) => "group",
            Scope::Department(_) => "department",
            Scope::Enterprise(_) => "enterprise",
        }
    }

    /// The usage records this scope counts, for rebuilding its counters.
    pub fn usage_scope(&self) -> UsageScope {
        match self {
            Scope::Key(id) => UsageScope::Key(id.clone()),
            Scope::Member { group_id, user_id } => UsageScope::Member {
                group_id: group_id.clone(),
                user_id: user_id.clone(),
            },
            Scope::Group(id) => UsageScope::Group(id.clone()),
            Scope::Department(id) => UsageScope::Department(id.clone()),
            Scope::Enterprise(id) => UsageScope::Enterprise(id.clone()),
        }
    }
}

/// One scope of a request and the limits configured there.
#[derive(Debug, Clone, Copy)]
pub struct ScopedLimits<'a> {
    pub scope: &'a Scope,
    pub limits: &'a KeyLimits,
}

/// Tokens and cost, as limits count them.
///
/// Tokens are input + cache writes + output. Cache reads are left out, as
/// Anthropic's own rate limits leave them out: they are cheap and a long
/// Claude Code session would otherwise exhaust token limits on re-reads.
/// Their cost still counts against cost limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    pub tokens: u64,
    pub cost_micro_usd: i64,
}

impl Spend {
    /// The spend of a settled request.
    pub fn of(usage: &Usage, cost_micro_usd: i64) -> Self {
        Self {
            tokens: counted_tokens(usage),
            cost_micro_usd,
        }
    }

    pub(crate) fn add(&mut self, other: Spend) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(other.cost_micro_usd);
    }

    pub(crate) fn sub(&mut self, other: Spend) {
        self.tokens = self.tokens.saturating_sub(other.tokens);
        self.cost_micro_usd = (self.cost_micro_usd - other.cost_micro_usd).max(0);
    }
}

/// The tokens of `usage` that count against token limits.
pub fn counted_tokens(u: &Usage) -> u64 {
    u.input_tokens
        .saturating_add(u.output_tokens)
        .saturating_add(u.cache_write_tokens())
}

/// What a request asks of the limiter.
#[derive(Debug, Clone)]
pub struct AdmissionRequest<'a> {
    /// Every scope of the request, each with its limits.
    pub scopes: Vec<ScopedLimits<'a>>,
    /// The upper bound to reserve until settlement.
    pub reserve: Spend,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    Concurrency,
    Tokens(Window),
    Cost(Window),
}

impl LimitKind {
    /// The field in `limits` that holds this limit.
    pub fn field(self) -> String {
        match self {
            LimitKind::RequestsPerMinute => "requestsPerMinute".into(),
            LimitKind::TokensPerMinute => "tokensPerMinute".into(),
            LimitKind::Concurrency => "concurrency".into(),
            LimitKind::Tokens(w) => format!("tokens.{}", w.as_str()),
            LimitKind::Cost(w) => format!("costUsd.{}", w.as_str()),
        }
    }
}

/// A refusal: which scope and limit, how much was used, and when to retry
/// (`None`: not before an admin raises the limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub kind: LimitKind,
    /// The configured limit (micro-USD for cost).
    pub limit: u64,
    /// Used, in flight included, when refused (micro-USD for cost).
    pub used: u64,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// The reason the refusal gives the client and the request log.
    pub fn reason(&self) -> RefusalReason {
        // As the messages name them: a token quota, a cost budget.
        match self.kind {
            LimitKind::RequestsPerMinute | LimitKind::TokensPerMinute => RefusalReason::RateLimit,
            LimitKind::Concurrency => RefusalReason::Concurrency,
            LimitKind::Tokens(_) => RefusalReason::Quota,
            LimitKind::Cost(_) => RefusalReason::Budget,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.scope.describe();
        let field = self.kind.field();
        match self.kind {
            LimitKind::RequestsPerMinute => write!(
                f,
                "limit of {scope} reached: {field} = {} requests per minute",
                self.limit
            ),
            LimitKind::TokensPerMinute => write!(
                f,
                "limit of {scope} reached: {field} = {} tokens per minute ({} used or reserved)",
                self.limit, self.used
            ),
            LimitKind::Concurrency => write!(
                f,
                "limit of {scope} reached: {field} = {} requests at once",
                self.limit
            ),
            LimitKind::Tokens(w) => write!(
                f,
                "{} token quota of {scope} used up: {field} = {} ({} used or reserved)",
                w.as_str(),
                self.limit,
                self.used
            ),
            LimitKind::Cost(w) => write!(
                f,
                "{} budget of {scope} used up: {field} = ${} (${} spent or reserved)",
                w.as_str(),
                usd(self.limit),
                usd(self.used)
            ),
        }?;
        match self.retry_after {
            Some(d) => write!(f, "; retry in {} s", d.as_secs_f64().ceil().max(1.0)),
            None => match self.scope {
                Scope::Department(_) | Scope::Enterprise(_) => {
                    write!(f, "; ask an enterprise admin to raise the budget")
                }
                _ => write!(f, "; ask a group admin to raise it"),
            },
        }
    }
}

/// Micro-USD as dollars with cents, or more digits when needed.
pub(crate) fn usd(micro: u64) -> String {
    if micro % 10_000 == 0 {
        format!("{}.{:02}", micro / 1_000_000, micro % 1_000_000 / 10_000)
    } else {
        format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// A limit is reached (HTTP 429).
    #[error("{0}")]
    Refused(Refusal),
    /// Counters could not be loaded, so limits cannot be checked (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
}

/// A scope's current use, as the limiter counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeUsage {
    /// Settled spend per window: daily, weekly, monthly, total.
    pub settled: [Spend; 4],
    /// Reserved by requests in flight.
    pub reserved: Spend,
    pub in_flight: u32,
    /// Requests admitted in the last minute.
    pub requests_last_minute: u32,
}

impl ScopeUsage {
    pub fn settled(&self, w: Window) -> Spend {
        self.settled[w.index()]
    }
}

/// Admits requests under limits.
#[async_trait]
pub trait Limiter: Send + Sync + fmt::Debug {
    /// Admits the request if every scope allows it, taking its request
    /// slot, concurrency slot and reservation in all scopes at once.
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Permit, AdmitError>;

    /// The current counters of `scope` (loaded from the usage store if the
    /// limiter has not seen it yet).
    async fn usage(&self, scope: &Scope) -> Result<ScopeUsage, AdmitError>;

    /// Waits until settlements still on their way to a shared backend have
    /// arrived (at shutdown). Counters in this process need nothing.
    async fn flush(&self) {}

    /// Whether a shared backend answers now, for readiness checks: the
    /// reason when it does not. Counters in this process are always ready.
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What a limiter keeps for one admitted request.
pub trait Ticket: Send + Sync + fmt::Debug {
    /// Replaces the reservation with `actual` and frees the slot. A shared
    /// backend sends it in the background and returns the task.
    fn settle(self: Box<Self>, actual: Spend) -> Settling;
    /// Drops the reservation without counting anything, frees the slot.
    fn release(self: Box<Self>);
    /// Frees the concurrency slot early, keeping the reservation.
    fn end_lease(&mut self);
}

/// An admitted request. Dropping it without [`Permit::settle`] releases
/// the reservation and the concurrency slot — on an error, a panic or a
/// cancelled task alike.
#[derive(Debug, Default)]
pub struct Permit {
    ticket: Option<Box<dyn Ticket>>,
    remaining: Remaining,
}

impl Permit {
    pub fn new(ticket: Box<dyn Ticket>, remaining: Remaining) -> Self {
        Self {
            ticket: Some(ticket),
            remaining,
        }
    }

    /// A permit that holds nothing (no limits apply).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// The member's headroom right after admission, for response headers.
    pub fn remaining(&self) -> &Remaining {
        &self.remaining
    }

    /// Counts what the request really used. Await the result to know the
    /// counters show it (a member's next request then sees the settled
    /// spend, not the reservation); dropped, it completes on its own.
    pub fn settle(mut self, actual: Spend) -> Settling {
        match self.ticket.take() {
            Some(t) => t.settle(actual),
            None => Settling::done(),
        }
    }

    /// The client left: its concurrency slot is free again, while the
    /// reservation stays until the drained usage is settled.
    pub fn end_lease(&mut self) {
        if let Some(t) = self.ticket.as_mut() {
            t.end_lease();
        }
    }
}

/// A settlement on its way to the counters; see [`Permit::settle`].
#[derive(Debug, Default)]
pub struct Settling(Option<tokio::task::JoinHandle<()>>);

impl Settling {
    /// Counted already.
    pub fn done() -> Self {
        Self(None)
    }

    /// Being counted by `task`.
    pub fn in_background(task: tokio::task::JoinHandle<()>) -> Self {
        Self(Some(task))
    }

    /// Waits until counted, at most `limit`; after that the task goes on
    /// alone. A settlement counted already costs no timer.
    pub async fn wait_at_most(self, limit: Duration) {
        if self.0.is_some() {
            let _ = tokio::time::timeout(limit, self).await;
        }
    }
}

impl Future for Settling {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            None => Poll::Ready(()),
            // A failed task has logged its error; there is nothing to wait for.
            Some(task) => Pin::new(task).poll(cx).map(|_| ()),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            t.release();
        }
    }
}

/// Where counters come from after a restart: what a scope spent since
/// each of several instants.
#[async_trait]
pub trait UsageBaseline: Send + Sync + fmt::Debug {
    async fn spent_since(
        &self,
        scope: &Scope,
        since: &[DateTime<Utc>],
    ) -> Result<Vec<Spend>, String>;
}

/// The usage store as the baseline: counters are rebuilt from the records
/// already written, so a restart resets nobody.
///
/// Records still queued in a [`UsageWriter`] are not in the store yet; give
/// the writer with [`StoreBaseline::after_writing`] and each load writes
/// them first, so a scope limited for the first time also counts the
/// requests of the last moments.
#[derive(Debug)]
pub struct StoreBaseline<S: ?Sized> {
    store: Arc<S>,
    writer: Option<UsageWriter>,
}

impl<S: ?Sized> StoreBaseline<S> {
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            writer: None,
        }
    }

    /// Writes what `writer` holds before every load.
    pub fn after_writing(mut self, writer: UsageWriter) -> Self {
        self.writer = Some(writer);
        self
    }
}

#[async_trait]
impl<S: UsageStore + fmt::Debug + ?Sized> UsageBaseline for StoreBaseline<S> {
    async fn spent_since(
        &self,
        scope: &Scope,
        since: &[DateTime<Utc>],
    ) -> Result<Vec<Spend>, String> {
        if let Some(writer) = &self.writer {
            writer.flush().await;
        }
        let totals = self
            .store
            .usage_since(&scope.usage_scope(), since)
            .await
            .map_err(|e| format!("loading the usage of {}: {e}", scope.describe()))?;
        Ok(totals
            .iter()
            .map(|t| Spend {
                tokens: t
                    .input_tokens
                    .saturating_add(t.output_tokens)
                    .saturating_add(t.cache_write_tokens),
                cost_micro_usd: t.cost_micro_usd,
            })
            .collect())
    }
}

/// No history: every scope starts at zero (embedding without a store).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBaseline;

#[async_trait]
impl UsageBaseline for NoBaseline {
    async fn spent_since(
        &self,
        _scope: &Scope,
        since: &[DateTime<Utc>],
    ) -> Result<Vec<Spend>, String> {
        Ok(vec![Spend::default(); since.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_messages_name_the_limit() {
        let r = Refusal {
            scope: Scope::Group("g".into()),
            kind: LimitKind::Cost(Window::Monthly),
            limit: 50_000_000,
            used: 50_001_234,
            retry_after: None,
        };
        let m = r.to_string();
        assert!(m.contains("monthly budget of this group"), "{m}");
        assert!(m.contains("costUsd.monthly = $50.00"), "{m}");
        assert!(m.contains("$50.001234"), "{m}");
        let r = Refusal {
            scope: Scope::Key("k".into()),
            kind: LimitKind::RequestsPerMinute,
            limit: 60,
            used: 60,
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(
            r.to_string(),
            "limit of this key reached: requestsPerMinute = 60 requests per minute; retry in 2 s"
        );
    }

    #[test]
    fn cache_reads_do_not_count_as_tokens() {
        let u = Usage {
            input_tokens: 25,
            output_tokens: 12,
            cache_write_5m_tokens: 100,
            cache_write_1h_tokens: 200,
            cache_read_tokens: 50,
        };
        assert_eq!(counted_tokens(&u), 337);
    }
}

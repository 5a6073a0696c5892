//! Choosing upstream accounts for a request.
//!
//! The gateway asks a [`Router`] for a [`Plan`] (candidates, best first),
//! asks it again right before each attempt ([`Router::begin`]: an account may
//! have cooled since, and a half-open account takes one probe at a time), and
//! reports how every attempt went. [`SmartRouter`] is the default: account
//! health, sticky sessions, priority tiers and weighted power-of-two-choices.
//! [`PriorityRouter`] is the plain policy: priority order, no memory.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;

use crate::account::{Account, ClientApi, Credentials, Protocol};

pub mod clock;
mod explain;
pub mod health;
pub mod session;
mod smart;
mod sticky;
mod verdict;
pub mod window;

pub use clock::{Clock, SystemClock, VirtualClock};
pub use health::{CoolReason, HealthPolicy, HealthSnapshot, HealthState};
pub use session::{SessionId, SessionKey};
pub use smart::{RouterStats, SmartRouter, SmartRouterConfig};
pub use verdict::{Tally, Verdict};

/// An account ready to be called: the stored record with its credentials
/// opened and its effective base URL resolved. `Debug` shows no secret.
pub struct RoutableAccount {
    pub account: Account,
    pub credentials: Credentials,
    pub base_url: String,
    /// Requests in flight right now (shared across route-table reloads).
    pub in_flight: Arc<AtomicU32>,
}

impl fmt::Debug for RoutableAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutableAccount")
            .field("id", &self.account.id)
            .field("name", &self.account.name)
            .field("base_url", &self.base_url)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RoutableAccount {
    /// The account's proxy URL with its password, which is kept sealed
    /// with the credentials rather than in the stored URL.
    pub fn proxy_url(&self) -> Option<String> {
        let url = self.account.proxy.as_deref()?;
        Some(crate::provider::proxy::with_password(
            url,
            self.credentials.proxy_password.as_deref(),
        ))
    }

    /// Takes a concurrency slot if the account has one free; the slot is
    /// given back when the returned lease drops.
    pub fn try_lease(self: &Arc<Self>) -> Option<InFlightLease> {
        let cap = self.account.max_concurrency.filter(|c| *c > 0);
        let acquired = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| match cap {
                Some(cap) if n >= cap => None,
                _ => Some(n + 1),
            })
            .is_ok();
        acquired.then(|| InFlightLease {
            counter: self.in_flight.clone(),
        })
    }

    /// Whether every concurrency slot is taken.
    pub fn saturated(&self) -> bool {
        let cap = self.account.max_concurrency.filter(|c| *c > 0);
        cap.is_some_and(|cap| self.in_flight.load(Ordering::Acquire) >= cap)
    }
}

/// One in-flight request on an account; decrements the count on drop.
#[derive(Debug)]
pub struct InFlightLease {
    counter: Arc<AtomicU32>,
}

impl Drop for InFlightLease {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An account as bound to one group.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub account: Arc<RoutableAccount>,
    pub priority: i32,
    pub weight: u32,
    pub dedicated: bool,
}

impl Candidate {
    /// Whether the account can take this request at all, health aside:
    /// enabled, of the `protocol` routed to, allowed to serve the
    /// client's API (translated when it is not its own), and the model
    /// (an empty model: any).
    pub fn serves(&self, protocol: Protocol, client: ClientApi, model: &str) -> bool {
        let a = &self.account.account;
        a.enabled
            && a.platform.protocol() == protocol
            && a.serves_client(client)
            && (model.is_empty() || a.serves_model(model))
    }

    /// Whether the request reaches this account through translation.
    pub fn translated(&self, client: ClientApi) -> bool {
        self.account.account.platform.protocol() != client.protocol()
    }
}

/// What the router knows about the request being routed.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub group_id: &'a str,
    pub key_id: &'a str,
    /// The account protocol routed to.
    pub protocol: Protocol,
    /// The API the client speaks (accounts of another protocol serve it
    /// only when their `serves` says so).
    pub client: ClientApi,
    pub model: &'a str,
    /// The conversation, scoped to the member key (sticky sessions).
    pub session: Option<SessionKey>,
    /// How many candidates the gateway can use; the plan need not be longer.
    pub max_candidates: usize,
}

impl<'a> RouteRequest<'a> {
    /// A request without a session, for at most `usize::MAX` candidates.
    pub fn new(group_id: &'a str, key_id: &'a str, protocol: Protocol, model: &'a str) -> Self {
        Self {
            group_id,
            key_id,
            protocol,
            client: ClientApi::native(protocol),
            model,
            session: None,
            max_candidates: usize::MAX,
        }
    }
}

/// How an attempt on an account went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered 2xx (reported at the first byte).
    Success { latency: Duration },
    /// 429, or a `rate_limit_error` event; the report's headers say until when.
    RateLimited,
    /// 529, or an `overloaded_error` event.
    Overloaded,
    /// 5xx, timeout, connect error, broken stream or another error event.
    Failed { status: Option<u16>, reason: String },
    /// 401/403 (or Gemini's 400 for an invalid API key): the account's
    /// credentials were refused; `reason` becomes its last error.
    CredentialsRejected { status: u16, reason: String },
    /// Another 4xx: the client's fault; does not count against the account.
    ClientError { status: u16 },
}

/// One attempt's report.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub account_id: &'a str,
    pub outcome: Outcome,
    /// The upstream's response headers, when it answered: the
    /// `retry-after` and `anthropic-ratelimit-unified-*` signals.
    pub headers: Option<&'a HeaderMap>,
    /// A wait the upstream named in its body rather than its headers
    /// (Gemini's `RetryInfo`); a `retry-after` header wins over it.
    pub retry_after: Option<Duration>,
    /// The conversation served; a success binds it to the account.
    pub session: Option<SessionKey>,
}

impl<'a> Report<'a> {
    pub fn new(account_id: &'a str, outcome: Outcome) -> Self {
        Self {
            account_id,
            outcome,
            headers: None,
            retry_after: None,
            session: None,
        }
    }

    pub fn headers(mut self, headers: &'a HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }

    pub fn retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    pub fn session(mut self, session: Option<SessionKey>) -> Self {
        self.session = session;
        self
    }
}

/// Accounts that serve the request but were left out of a plan, and when
/// the soonest of them comes back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldBack {
    pub rate_limited: u32,
    pub overloaded: u32,
    pub failing: u32,
    pub needs_attention: u32,
    pub saturated: u32,
    /// Half-open with its probe already out.
    pub probing: u32,
    /// Soonest end of a rate-limit cooling, from now.
    pub rate_limit_recovery: Option<Duration>,
}

impl HeldBack {
    pub fn total(&self) -> u32 {
        self.rate_limited
            + self.overloaded
            + self.failing
            + self.needs_attention
            + self.saturated
            + self.probing
    }

    pub(crate) fn cooling(&mut self, reason: CoolReason, wait: Duration) {
        match reason {
            CoolReason::RateLimited => {
                self.rate_limited += 1;
                self.rate_limit_recovery =
                    Some(self.rate_limit_recovery.map_or(wait, |w| w.min(wait)));
            }
            CoolReason::Overloaded => self.overloaded += 1,
            CoolReason::Failing => self.failing += 1,
            CoolReason::CredentialsRejected => self.needs_attention += 1,
        }
    }
}

/// What happened to the request's sticky session in a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StickyChoice {
    /// The request has no session.
    #[default]
    None,
    /// The session has no account yet.
    New,
    /// Its account is eligible and leads the plan.
    Hit,
    /// Its account cannot serve now; the session will move.
    Left,
}

/// A route decision.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Candidates to try, best first.
    pub candidates: Vec<Candidate>,
    /// Candidates that serve the protocol and model (eligible or not).
    pub serving: usize,
    pub held_back: HeldBack,
    pub sticky: StickyChoice,
}

/// Leave to send one attempt to an account. When the account is half-open
/// this attempt is its probe, and dropping the permit frees the slot.
#[derive(Default)]
pub struct AttemptPermit {
    probe: Option<(Arc<health::AccountHealth>, u64)>,
}

impl fmt::Debug for AttemptPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptPermit")
            .field("probe", &self.is_probe())
            .finish()
    }
}

impl AttemptPermit {
    /// Whether this attempt probes a half-open account.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

impl Drop for AttemptPermit {
    fn drop(&mut self) {
        if let Some((health, token)) = self.probe.take() {
            health.release_probe(token);
        }
    }
}

/// Whether an account can be chosen now, and why (the routing endpoint).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Eligibility {
    pub account_id: String,
    pub name: String,
    pub dedicated: bool,
    pub priority: i32,
    pub weight: u32,
    /// `healthy`, `cooling`, `half_open`, `needs_attention` or `disabled`.
    pub state: &'static str,
    pub eligible: bool,
    pub reason: String,
    pub cooling_until: Option<chrono::DateTime<chrono::Utc>>,
    pub in_flight: u32,
    pub max_concurrency: Option<u32>,
    pub sticky_sessions: u64,
}

/// Chooses accounts for requests.
pub trait Router: Send + Sync + fmt::Debug {
    /// The candidates to try, best first (may be empty), and why the others
    /// were left out.
    fn plan(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Plan;

    /// Right before an attempt: `None` if the account must not be tried now
    /// (it cooled since the plan, or its one probe slot is taken).
    fn begin(&self, _account_id: &str) -> Option<AttemptPermit> {
        Some(AttemptPermit::default())
    }

    /// Reports the outcome of one attempt.
    fn report(&self, report: &Report<'_>);

    /// Forgets an account's failures (an admin changed it).
    fn reset(&self, _account_id: &str) {}

    /// Another instance saw the account rate-limited until `until`: cool it
    /// here too, so this instance does not earn its own 429. Not a failure
    /// of this instance's attempts.
    fn observe_cooling(&self, _account_id: &str, _until: chrono::DateTime<chrono::Utc>) {}

    /// What the router knows about an account's health, if it keeps any.
    fn health(&self, _account_id: &str) -> Option<HealthSnapshot> {
        None
    }

    /// Each candidate's eligibility for `request` now, in binding order.
    fn explain(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Vec<Eligibility> {
        explain::without_health(request, candidates)
    }
}

/// Accounts in priority order (dedicated entries first in hybrid mode),
/// skipping disabled accounts, other protocols and models not served.
#[derive(Debug, Default, Clone, Copy)]
pub struct PriorityRouter;

impl Router for PriorityRouter {
    fn plan(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Plan {
        let mut plan: Vec<Candidate> = candidates
            .iter()
            .filter(|c| c.serves(request.protocol, request.client, request.model))
            .cloned()
            .collect();
        // Stable: equal priorities keep the binding's order.
        plan.sort_by_key(|c| (!c.dedicated, c.priority));
        let serving = plan.len();
        plan.truncate(request.max_candidates.max(1));
        Plan {
            candidates: plan,
            serving,
            ..Plan::default()
        }
    }

    fn report(&self, _report: &Report<'_>) {}
}

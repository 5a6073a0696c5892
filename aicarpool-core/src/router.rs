//! Choosing upstream accounts for a request.
//!
//! The gateway asks a [`Router`] for an ordered plan of candidates and tells
//! it how each attempt went. [`PriorityRouter`] is the simple policy: the
//! group's accounts in priority order, skipping those that cannot serve.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::account::{Account, Credentials, Protocol};

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

/// What the router knows about the request being routed.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub group_id: &'a str,
    pub key_id: &'a str,
    pub protocol: Protocol,
    pub model: &'a str,
}

/// How an attempt on an account went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success {
        latency: Duration,
    },
    /// Rate limited (429); `retry_after` when the upstream said.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// Overloaded (529).
    Overloaded,
    /// 5xx, timeout, connect error or broken stream.
    Failed {
        reason: String,
    },
    /// 401/403: the account's credentials were refused.
    CredentialsRejected {
        status: u16,
    },
}

/// Chooses accounts for requests.
pub trait Router: Send + Sync + fmt::Debug {
    /// The candidates to try, best first. May be empty.
    fn plan(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Vec<Candidate>;

    /// Reports the outcome of one attempt.
    fn report(&self, account_id: &str, outcome: &Outcome);
}

/// Accounts in priority order (dedicated entries first in hybrid mode),
/// skipping disabled accounts, other protocols and models not served.
#[derive(Debug, Default, Clone, Copy)]
pub struct PriorityRouter;

impl Router for PriorityRouter {
    fn plan(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Vec<Candidate> {
        let mut plan: Vec<Candidate> = candidates
            .iter()
            .filter(|c| {
                let a = &c.account.account;
                a.enabled
                    && a.platform.protocol() == request.protocol
                    && a.serves_model(request.model)
            })
            .cloned()
            .collect();
        // Stable: equal priorities keep the binding's order.
        plan.sort_by_key(|c| (!c.dedicated, c.priority));
        plan
    }

    fn report(&self, _account_id: &str, _outcome: &Outcome) {}
}

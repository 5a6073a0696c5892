//! The SmartRouter: health-aware, sticky, tiered, weighted.
//!
//! A route decision: keep the candidates that serve the request and are
//! healthy (or half-open with the probe slot free) and under their
//! concurrency cap; put the session's sticky account first when it is
//! among them; then, tier by tier (dedicated before pool, lower priority
//! first), weighted power-of-two-choices on in-flight / weight, where an
//! account whose upstream warned loses to one that did not, and ties go
//! to the window that resets soonest. One pass over the candidates plus one
//! per returned entry: linear in the pool size.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::clock::{Clock, SystemClock};
use super::explain;
use super::health::{AccountHealth, Admission, HealthPolicy, HealthSnapshot, HealthState};
use super::sticky::{Bound, StickyTable};
use super::window::RateSignals;
use super::{
    AttemptPermit, Candidate, Eligibility, Outcome, Plan, Report, RouteRequest, Router,
    StickyChoice,
};

/// Settings of a [`SmartRouter`].
#[derive(Debug, Clone)]
pub struct SmartRouterConfig {
    pub policy: HealthPolicy,
    /// A session unused this long forgets its account (sliding).
    pub sticky_ttl: Duration,
    /// Sessions remembered at most (the least useful are evicted first).
    pub sticky_capacity: u64,
    /// Seed of the power-of-two-choices; `None`: from the OS.
    pub seed: Option<u64>,
}

impl Default for SmartRouterConfig {
    fn default() -> Self {
        Self {
            policy: HealthPolicy::default(),
            sticky_ttl: Duration::from_secs(3600),
            sticky_capacity: 200_000,
            seed: None,
        }
    }
}

/// Counters since the router started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub plans: u64,
    /// Plans led by the session's sticky account.
    pub sticky_hits: u64,
    /// Plans whose sticky account could not serve.
    pub sticky_left: u64,
    /// Sessions bound for the first time.
    pub sticky_new: u64,
    /// Sessions rebound to another account.
    pub sticky_moves: u64,
    /// Half-open probes sent.
    pub probes: u64,
    /// Attempts refused at the last moment (cooled since the plan, or the
    /// probe slot taken).
    pub refused: u64,
    pub sticky_sessions: u64,
}

#[derive(Debug, Default)]
struct Counters {
    plans: AtomicU64,
    sticky_hits: AtomicU64,
    sticky_left: AtomicU64,
    sticky_new: AtomicU64,
    sticky_moves: AtomicU64,
    probes: AtomicU64,
    refused: AtomicU64,
}

/// Health by account id. Written only when an account is first reported;
/// read once per route decision.
type Registry = RwLock<HashMap<Arc<str>, Arc<AccountHealth>>>;

/// The default router. Cheap to share; all state is in memory.
pub struct SmartRouter {
    clock: Arc<dyn Clock>,
    policy: HealthPolicy,
    accounts: Registry,
    sticky: StickyTable,
    /// Advances once per decision; seeds that decision's `SmallRng`, so a
    /// seeded router replays the same choices without a shared lock.
    rng_seq: AtomicU64,
    counters: Counters,
}

impl fmt::Debug for SmartRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmartRouter")
            .field("clock", &self.clock)
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for SmartRouter {
    fn default() -> Self {
        Self::new()
    }
}

/// One eligible candidate during a decision.
#[derive(Debug, Clone, Copy)]
struct Entry {
    index: usize,
    /// Dedicated before pool, then lower priority first.
    tier: (bool, i32),
    weight: u64,
    load: u64,
    warned: bool,
    /// Half-open with its probe slot free.
    probe: bool,
    /// Soonest window reset (epoch s); `u64::MAX` when unknown.
    reset: u64,
}

impl Entry {
    /// Whether `self` should win over `other`: healthy before half-open
    /// (beyond the one probe a plan leads with), not warned, then less load
    /// per weight, then the sooner reset. `None` on a full tie.
    fn beats(&self, other: &Entry) -> Option<bool> {
        if self.probe != other.probe {
            return Some(!self.probe);
        }
        if self.warned != other.warned {
            return Some(!self.warned);
        }
        let (a, b) = (self.load * other.weight, other.load * self.weight);
        if a != b {
            return Some(a < b);
        }
        (self.reset != other.reset).then_some(self.reset < other.reset)
    }
}

fn lock_err<T>(e: std::sync::PoisonError<T>) -> T {
    e.into_inner()
}

impl SmartRouter {
    /// System clock, default settings, a random seed.
    pub fn new() -> Self {
        Self::with_config(SmartRouterConfig::default(), Arc::new(SystemClock))
    }

    pub fn with_config(config: SmartRouterConfig, clock: Arc<dyn Clock>) -> Self {
        let seed = config.seed.unwrap_or_else(rand::random);
        Self {
            clock,
            policy: config.policy,
            accounts: RwLock::default(),
            sticky: StickyTable::new(config.sticky_capacity, config.sticky_ttl),
            rng_seq: AtomicU64::new(seed),
            counters: Counters::default(),
        }
    }

    pub fn stats(&self) -> RouterStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RouterStats {
            plans: get(&c.plans),
            sticky_hits: get(&c.sticky_hits),
            sticky_left: get(&c.sticky_left),
            sticky_new: get(&c.sticky_new),
            sticky_moves: get(&c.sticky_moves),
            probes: get(&c.probes),
            refused: get(&c.refused),
            sticky_sessions: self.sticky.len(),
        }
    }

    /// An account's state now (healthy when never reported).
    pub fn state(&self, account_id: &str) -> HealthState {
        let now = self.clock.now_ms();
        self.account(account_id)
            .map_or(HealthState::Healthy, |h| h.state(now))
    }

    fn account(&self, id: &str) -> Option<Arc<AccountHealth>> {
        self.accounts
            .read()
            .unwrap_or_else(lock_err)
            .get(id)
            .cloned()
    }

    fn account_or_insert(&self, id: &str) -> Arc<AccountHealth> {
        if let Some(h) = self.account(id) {
            return h;
        }
        let mut map = self.accounts.write().unwrap_or_else(lock_err);
        map.entry(Arc::from(id))
            .or_insert_with(|| Arc::new(AccountHealth::new(id)))
            .clone()
    }

    /// A generator for one decision. The sequence number goes through
    /// SplitMix64 first: seeding `SmallRng` from consecutive integers makes
    /// their first draws correlated (a measurable bias towards heavier
    /// weights).
    fn rng(&self) -> SmallRng {
        let n = self.rng_seq.fetch_add(1, Ordering::Relaxed);
        let mut z = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        SmallRng::seed_from_u64(z ^ (z >> 31))
    }

    /// Weighted power-of-two-choices among the `tier` entries (indices
    /// into `pool`, `total` their summed weight): two distinct entries drawn
    /// with probability proportional to weight, the better one (see
    /// [`Entry::beats`]) wins, a tie goes to the first. Returns a position
    /// in `tier`.
    fn pick(pool: &[Entry], tier: &[usize], total: u64, rng: &mut SmallRng) -> usize {
        let draw = |rng: &mut SmallRng, total: u64, skip: Option<usize>| {
            let mut r = rng.gen_range(0..total.max(1));
            let mut last = 0;
            for (at, &i) in tier.iter().enumerate() {
                if Some(at) == skip {
                    continue;
                }
                last = at;
                if r < pool[i].weight {
                    return at;
                }
                r -= pool[i].weight;
            }
            last
        };
        let first = draw(rng, total, None);
        if tier.len() < 2 {
            return first;
        }
        let second = draw(rng, total - pool[tier[first]].weight, Some(first));
        match pool[tier[second]].beats(&pool[tier[first]]) {
            Some(true) => second,
            _ => first,
        }
    }

    /// Orders up to `max` entries of `pool`: tier by tier; one half-open
    /// account leads its tier (its probe is how it comes back, and a failed
    /// probe only costs an attempt the next candidate makes up for), then
    /// each pick by [`Self::pick`]. One pass per tier used plus one per pick
    /// over that tier only.
    fn order(&self, pool: &mut Vec<Entry>, max: usize, out: &mut Vec<usize>) {
        let mut rng: Option<SmallRng> = None;
        let mut tier: Vec<usize> = Vec::new();
        let mut probed = false;
        while out.len() < max && !pool.is_empty() {
            let Some(best) = pool.iter().map(|e| e.tier).min() else {
                break;
            };
            tier.clear();
            tier.extend((0..pool.len()).filter(|&i| pool[i].tier == best));
            let mut total: u64 = tier.iter().map(|&i| pool[i].weight).sum();
            while out.len() < max && !tier.is_empty() {
                let probe = (!probed)
                    .then(|| tier.iter().position(|&i| pool[i].probe))
                    .flatten();
                let at = if let Some(at) = probe {
                    probed = true;
                    at
                } else if tier.len() == 1 {
                    0
                } else {
                    let rng = rng.get_or_insert_with(|| self.rng());
                    Self::pick(pool, &tier, total, rng)
                };
                let i = tier.swap_remove(at);
                total -= pool[i].weight;
                out.push(pool[i].index);
            }
            pool.retain(|e| e.tier != best);
        }
    }
}

impl Router for SmartRouter {
    fn plan(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Plan {
        self.counters.plans.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now_ms();
        let sticky = request.session.and_then(|k| self.sticky.get(&k));
        let mut plan = Plan::default();
        let mut pool: Vec<Entry> = Vec::with_capacity(candidates.len());
        let mut sticky_entry = None;
        {
            let accounts = self.accounts.read().unwrap_or_else(lock_err);
            for (index, c) in candidates.iter().enumerate() {
                if !c.serves(request.protocol, request.client, request.model) {
                    continue;
                }
                plan.serving += 1;
                let id = c.account.account.id.as_str();
                let health = accounts.get(id);
                let state = health.map_or(HealthState::Healthy, |h| h.state(now));
                match state {
                    HealthState::Healthy | HealthState::HalfOpen { probing: false } => {}
                    HealthState::Cooling { until_ms, reason } => {
                        let wait = Duration::from_millis(until_ms.saturating_sub(now));
                        plan.held_back.cooling(reason, wait);
                        continue;
                    }
                    HealthState::HalfOpen { probing: true } => {
                        plan.held_back.probing += 1;
                        continue;
                    }
                    HealthState::NeedsAttention => {
                        plan.held_back.needs_attention += 1;
                        continue;
                    }
                }
                if c.account.saturated() {
                    plan.held_back.saturated += 1;
                    continue;
                }
                let entry = Entry {
                    index,
                    tier: (!c.dedicated, c.priority),
                    weight: u64::from(c.weight.max(1)),
                    load: u64::from(c.account.in_flight.load(Ordering::Relaxed)),
                    warned: health.is_some_and(|h| h.warned(now)),
                    probe: state == HealthState::HalfOpen { probing: false },
                    reset: health.and_then(|h| h.reset_hint_s()).unwrap_or(u64::MAX),
                };
                if sticky.as_ref().is_some_and(|s| s.id() == id) {
                    sticky_entry = Some(entry);
                } else {
                    pool.push(entry);
                }
            }
        }
        plan.sticky = match (request.session, &sticky, &sticky_entry) {
            (None, _, _) => StickyChoice::None,
            (Some(_), None, _) => StickyChoice::New,
            (Some(_), Some(_), Some(_)) => StickyChoice::Hit,
            (Some(_), Some(_), None) => StickyChoice::Left,
        };
        match plan.sticky {
            StickyChoice::Hit => self.counters.sticky_hits.fetch_add(1, Ordering::Relaxed),
            StickyChoice::Left => self.counters.sticky_left.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let max = request.max_candidates.max(1);
        let mut order = Vec::with_capacity(max.min(pool.len() + 1));
        if let Some(e) = sticky_entry {
            order.push(e.index);
        }
        self.order(&mut pool, max, &mut order);
        plan.candidates = order.into_iter().map(|i| candidates[i].clone()).collect();
        plan
    }

    fn begin(&self, account_id: &str) -> Option<AttemptPermit> {
        let Some(health) = self.account(account_id) else {
            return Some(AttemptPermit::default());
        };
        match health.try_begin(self.clock.now_ms()) {
            Admission::Go => Some(AttemptPermit::default()),
            Admission::Probe(token) => {
                self.counters.probes.fetch_add(1, Ordering::Relaxed);
                Some(AttemptPermit {
                    probe: Some((health, token)),
                })
            }
            Admission::Refused(_) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn report(&self, report: &Report<'_>) {
        let now = self.clock.now_ms();
        let health = self.account_or_insert(report.account_id);
        let signals = report
            .headers
            .map(|h| RateSignals::from_headers(h, now))
            .unwrap_or_default()
            .or_wait(report.retry_after, now);
        health.record(now, &report.outcome, &signals, &self.policy);
        if let (Outcome::Success { .. }, Some(key)) = (&report.outcome, report.session) {
            let counter = match self.sticky.bind(key, &health) {
                Bound::New => &self.counters.sticky_new,
                Bound::Moved => {
                    tracing::debug!(account_id = report.account_id, "sticky session moved");
                    &self.counters.sticky_moves
                }
                Bound::Same => return,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset(&self, account_id: &str) {
        if let Some(h) = self.account(account_id) {
            h.reset();
        }
    }

    fn observe_cooling(&self, account_id: &str, until: chrono::DateTime<chrono::Utc>) {
        let now = self.clock.now_ms();
        let until_ms = u64::try_from(until.timestamp_millis()).unwrap_or(0);
        // Already over (a late message): nothing to learn.
        if until_ms <= now {
            return;
        }
        self.account_or_insert(account_id)
            .observe_cooling(now, until_ms, &self.policy);
    }

    fn health(&self, account_id: &str) -> Option<HealthSnapshot> {
        self.sticky.sync();
        let now = self.clock.now_ms();
        Some(match self.account(account_id) {
            Some(h) => h.snapshot(now),
            None => AccountHealth::new(account_id).snapshot(now),
        })
    }

    fn explain(&self, request: &RouteRequest<'_>, candidates: &[Candidate]) -> Vec<Eligibility> {
        self.sticky.sync();
        let now = self.clock.now_ms();
        let states: Vec<_> = candidates
            .iter()
            .map(|c| {
                self.account(&c.account.account.id)
                    .map(|h| explain::Seen {
                        state: h.state(now),
                        warned: h.warned(now),
                        sticky: h.sticky_sessions(),
                    })
                    .unwrap_or_default()
            })
            .collect();
        explain::with_health(request, candidates, &states)
    }
}

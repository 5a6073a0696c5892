//! Redis for several gateway instances: [`RedisLimiter`] shares member
//! limits, [`RedisInvalidationBus`] shares cache invalidations,
//! [`RedisLoginStore`] shares pending Claude sign-ins,
//! [`RedisWindowLedger`] shares members' use of subscription windows. The
//! limiter's design (why Lua, key layout, failure behaviour) is documented
//! on [`RedisLimiter`] itself, since this module is private.

mod connection;
mod invalidation;
mod keys;
mod logins;
mod reply;
mod ticket;
mod windows;

pub use connection::RedisConnectError;
pub use invalidation::{InvalidationBusError, RedisInvalidationBus};
pub use logins::{RedisLoginStore, RedisLoginStoreError};
pub use windows::RedisWindowLedger;

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use aicarpool_core::limit::{
    AdmissionRequest, AdmitError, Bounds, Calendar, Clock, Limiter, Permit, Scope, ScopeUsage,
    ScopedLimits, Spend, SystemClock, Tz, UsageBaseline, Window,
};
use aicarpool_core::limits::KeyLimits;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{RedisError, Script};

use connection::Connection;
use keys::ScopeKeys;
use ticket::{Pending, RedisTicket};

/// Period counters outlive their period by this much, for instances whose
/// clocks differ a little.
const PERIOD_MARGIN_MS: i64 = 3_600_000;
/// The total counter lives this long after its last use. It must outlive
/// the longest period (a month plus the margin): it marks the scope as
/// seeded, and a marker outliving its counters would start them at zero.
const TOTAL_IDLE_MS: i64 = 35 * 86_400_000;
/// The in-flight keys outlive their newest entry by this much.
const FLIGHT_MARGIN_MS: i64 = 60_000;
/// How long one instance may hold a scope's load lock (real time: it
/// guards a query to the usage store, not a limit window).
const LOAD_LOCK: Duration = Duration::from_secs(10);
/// How long admission waits for another instance's load before giving up;
/// past [`LOAD_LOCK`] the lock expires and this instance loads itself.
const LOAD_WAIT: Duration = Duration::from_secs(15);
/// Pause between looks at a scope another instance is loading.
const LOAD_POLL: Duration = Duration::from_millis(10);

static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("redis/common.lua"),
        include_str!("redis/admit.lua")
    ))
});
static SEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("redis/common.lua"),
        include_str!("redis/seed.lua")
    ))
});
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("redis/common.lua"),
        include_str!("redis/finish.lua")
    ))
});

/// Why a [`RedisLimiter`] could not be set up, or Redis did not answer.
pub type RedisLimiterError = RedisConnectError;

/// Member limits shared by several gateway instances through Redis.
/// Cheap to clone.
///
/// This is the [`Limiter`] of a gateway that runs as several
/// instances: all of them keep their counters in one Redis, so a key's
/// `requestsPerMinute`, a group's monthly budget or a member's concurrency
/// hold across the fleet, not per instance. It counts exactly like the
/// in-memory limiter (same checks, same refusals, same headroom); the
/// limiter conformance suite in `aicarpool_core::testing::limiter` runs
/// against both.
///
/// # Why Lua
///
/// Admission reads every scope of a request (key, member, group,
/// department, enterprise), checks them all and then takes a request slot,
/// a concurrency lease and a reservation in each — all or nothing. Done as
/// separate commands, two instances could both see the last slot free and
/// both take it. One Lua script per admission (sent as `EVALSHA`) runs
/// atomically in Redis, so the check and the taking cannot interleave with
/// another instance's. The time comes from the limiter's [`Clock`] as a
/// script argument, never from Redis' `TIME`, so windows and expiries
/// follow the same clock as the in-memory limiter (and tests drive it).
///
/// # Key layout
///
/// Every key starts with the prefix (default `aicp:limit:`), then the
/// scope (`key:<id>`, `member:<group>:<user>`, `group:<id>`, …; `%` and
/// `:` in ids are escaped):
///
/// | key | type | holds | TTL |
/// |---|---|---|---|
/// | `…:lease` | zset | concurrency leases: ticket → expiry | lease TTL + 1 min |
/// | `…:resv` | zset | reservations: `ticket\|tokens\|cost` → expiry | same |
/// | `…:sum` | hash | reserved tokens `t` and micro-USD `c` | same |
/// | `…:rpm` | zset | admissions of the rolling minute | 2 min |
/// | `…:tpm` | hash | settled tokens per unix second | 2 min |
/// | `…:q:daily:<start ms>` (weekly, monthly) | hash | settled `t`, `c` of one period | period end + 1 h |
/// | `…:q:total` | hash | settled `t`, `c` since the beginning | 35 days after last use |
/// | `…:load` | string | lock of the instance loading the baseline | 10 s |
///
/// Every key expires, so Redis never fills up with scopes nobody uses.
/// TTLs are relative (`PEXPIRE`), computed from the limiter's clock.
/// For Redis Cluster, put a hash tag in the prefix (`{aicp}:limit:`) so
/// that all keys of one admission live in one slot.
///
/// # Counters from the usage store
///
/// A scope's `q:total` hash doubles as its "seeded" marker: every write
/// refreshes it with the longest TTL, so while it exists the scope's
/// counters are complete. When a limited scope has none, the admission
/// script takes the scope's `load` lock (`SET NX`) and answers "baseline
/// needed"; that instance asks the [`UsageBaseline`] what the scope spent
/// since each window start, writes the counters that are still absent and
/// retries, while other instances wait for it. The baseline is thus loaded
/// once across the fleet. A scope without limits and without counters is
/// not tracked at all and costs no baseline query. Later periods start
/// from zero when they begin, as in memory.
///
/// # Failures
///
/// * Redis unreachable: admission and [`Limiter::usage`] fail with
///   [`AdmitError::Unavailable`] (the gateway answers 503); the connection
///   manager reconnects by itself. Messages never contain the password.
///   A request none of whose scopes has limits is admitted uncounted: no
///   limit could refuse it.
/// * Settlement, release and the end of a lease are synchronous in the
///   [`Ticket`](aicarpool_core::limit::Ticket) trait: they are sent from a
///   task on the current Tokio runtime and a failure is logged. They land
///   a moment after the call returns; until then the scope still counts
///   the reservation, which may refuse, never overspend. What is not
///   given back expires: each lease and reservation carries an expiry
///   ([`RedisLimiter::with_lease_ttl`], 10 minutes by default) and the
///   admission script sweeps expired ones, so an instance that dies never
///   blocks a scope for good. A request running longer than the lease TTL
///   loses its lease and reservation (its spend is still counted).
/// * Redis restarted without its data: every scope reloads from the usage
///   store on first use; only in-flight reservations are forgotten.
/// * A period counter evicted under memory pressure restarts at zero (an
///   evicted total reloads); run the limiter's Redis with
///   `maxmemory-policy noeviction`.
/// * On shutdown, [`RedisLimiter::flush`] waits for the settlements still
///   on their way.
#[derive(Clone)]
pub struct RedisLimiter {
    redis: Connection,
    baseline: Arc<dyn UsageBaseline>,
    calendar: Arc<Calendar>,
    clock: Arc<dyn Clock>,
    prefix: Arc<str>,
    lease_ttl: Duration,
    pending: Arc<Pending>,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("target", &self.redis.target)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("time_zone", &self.calendar.time_zone())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "aicp:limit:";

    /// How long a lease or reservation is kept by default when its
    /// instance does not give it back.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(600);

    /// A limiter on the Redis at `url` (`redis://[:password@]host:port/db`,
    /// `rediss://` for TLS), calendar windows in `tz`, counters seeded
    /// from `baseline`.
    ///
    /// The connection is made in the background and remade whenever it is
    /// lost: a Redis that is down now makes admissions fail with
    /// [`AdmitError::Unavailable`] until it is back, and is logged here,
    /// but does not fail the start. Use [`ping`](Self::ping) to insist.
    pub async fn connect(
        url: &str,
        baseline: Arc<dyn UsageBaseline>,
        tz: Tz,
    ) -> Result<Self, RedisLimiterError> {
        let redis = Connection::open_lazy(url)?;
        let limiter = Self {
            redis,
            baseline,
            calendar: Arc::new(Calendar::new(tz)),
            clock: Arc::new(SystemClock),
            prefix: Self::DEFAULT_PREFIX.into(),
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            pending: Arc::default(),
        };
        if let Err(e) = limiter.ping().await {
            tracing::warn!("{e}; requests under limits get 503 until it answers");
        }
        Ok(limiter)
    }

    /// Reads the time from `clock` (tests drive a `ManualClock`). Every
    /// instance on one Redis should read the same time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps the keys under `prefix` (default [`Self::DEFAULT_PREFIX`]).
    /// Instances share limits exactly when they share Redis and prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// How long a lease and reservation outlive their admission when the
    /// instance never gives them back (default [`Self::DEFAULT_LEASE_TTL`]).
    /// Longer than the longest request, or long requests lose theirs.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    pub fn time_zone(&self) -> Tz {
        self.calendar.time_zone()
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), RedisLimiterError> {
        self.redis.ping().await
    }

    /// Waits until the settlements, releases and ends of leases this
    /// instance handed to background tasks have reached Redis (or failed):
    /// for a graceful shutdown, and for tests that read right after.
    pub async fn flush(&self) {
        self.pending.idle().await;
    }

    fn keys(&self, scope: &Scope) -> ScopeKeys {
        ScopeKeys::new(&self.prefix, scope)
    }

    fn unavailable(&self, e: &RedisError) -> AdmitError {
        AdmitError::Unavailable(format!(
            "limit counters in Redis ({}) unavailable: {}",
            self.redis.target,
            self.redis.scrub(e)
        ))
    }

    fn ms(d: Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    /// TTL of the in-flight keys: they outlive their newest entry.
    fn flight_ttl_ms(&self) -> i64 {
        Self::ms(self.lease_ttl).saturating_add(FLIGHT_MARGIN_MS)
    }

    /// Admission proper, on owned scopes so that it can run as a task.
    async fn admit_owned(
        &self,
        mut scopes: Vec<(Scope, KeyLimits)>,
        reserve: Spend,
    ) -> Result<Permit, AdmitError> {
        // The in-memory limiter's lock order; here it orders refusals the
        // same way, so ties name the same scope.
        scopes.sort_by(|a, b| a.0.cmp(&b.0));
        let scoped: Vec<_> = scopes
            .iter()
            .map(|(scope, limits)| ScopedLimits { scope, limits })
            .collect();
        let keyed: Vec<_> = scopes
            .iter()
            .map(|(scope, limits)| (self.keys(scope), scope, Some(limits)))
            .collect();
        let ticket = aicarpool_core::id::new_id();
        let (reply, now, bounds) = match self.run("admit", &keyed, reserve, &ticket).await {
            Ok(r) => r,
            // Nothing could refuse this request: let it through rather than
            // fail it for want of counters. Scopes that still have counters
            // (limits lifted) miss its spend; the usage store has it.
            Err(AdmitError::Unavailable(e)) if scopes.iter().all(|s| s.1.is_unlimited()) => {
                tracing::warn!("admitting a request without limits uncounted: {e}");
                return Ok(Permit::unlimited());
            }
            Err(e) => return Err(e),
        };
        let admitted = reply::admission(&reply, &scoped, now, &bounds)?;
        if admitted.tracked.is_empty() {
            return Ok(Permit::unlimited());
        }
        let (mut tracked, mut untracked) = (Vec::new(), Vec::new());
        for (i, (keys, _, _)) in keyed.into_iter().enumerate() {
            if admitted.tracked.contains(&i) {
                tracked.push(keys);
            } else {
                untracked.push(keys);
            }
        }
        let ticket = RedisTicket::new(self.clone(), ticket, tracked, untracked, reserve);
        Ok(Permit::new(Box::new(ticket), admitted.remaining))
    }

    /// Runs the admission script (`mode` `admit` or `usage`) until no
    /// scope needs its baseline any more; returns the reply with the time
    /// it was computed at.
    async fn run(
        &self,
        mode: &str,
        scopes: &[(ScopeKeys, &Scope, Option<&KeyLimits>)],
        reserve: Spend,
        ticket: &str,
    ) -> Result<(Vec<i64>, DateTime<Utc>, Bounds), AdmitError> {
        let deadline = Instant::now() + LOAD_WAIT;
        loop {
            let now = self.clock.now();
            let bounds = self.calendar.bounds(now);
            let now_ms = now.timestamp_millis();
            let mut inv = ADMIT.prepare_invoke();
            for (keys, _, _) in scopes {
                for k in keys.admit(&bounds) {
                    inv.key(k);
                }
            }
            inv.arg(mode)
                .arg(now_ms)
                .arg(ticket)
                .arg(reserve.tokens)
                .arg(reserve.cost_micro_usd)
                .arg(now_ms.saturating_add(Self::ms(self.lease_ttl)))
                .arg(self.flight_ttl_ms())
                .arg(Self::ms(LOAD_LOCK))
                .arg(ticket);
            for ttl in period_ttls(now, &bounds) {
                inv.arg(ttl);
            }
            for w in Window::ALL {
                inv.arg(bounds.end(w).map_or(-1, |t| t.timestamp_millis()));
            }
            inv.arg(scopes.len());
            for (_, _, limits) in scopes {
                push_limits(&mut inv, *limits);
            }
            let mut conn = self.redis.conn.clone();
            let reply: Vec<i64> = inv
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(&e))?;
            if reply.first() != Some(&reply::NEEDS_BASELINE) {
                return Ok((reply, now, bounds));
            }
            let waiting = self.seed(scopes, &reply[1..], &bounds, ticket).await?;
            if waiting {
                if Instant::now() >= deadline {
                    return Err(AdmitError::Unavailable(
                        "limit counters in Redis: timed out waiting for another gateway \
                         instance to load them from the usage store"
                            .into(),
                    ));
                }
                tokio::time::sleep(LOAD_POLL).await;
            }
        }
    }

    /// Loads the baseline of the scopes whose lock this call holds and
    /// seeds their counters; whether other scopes wait for another caller.
    async fn seed(
        &self,
        scopes: &[(ScopeKeys, &Scope, Option<&KeyLimits>)],
        pairs: &[i64],
        bounds: &Bounds,
        token: &str,
    ) -> Result<bool, AdmitError> {
        let mut waiting = false;
        let mut loaded: Vec<(usize, Option<Vec<Spend>>)> = Vec::new();
        let mut failure = None;
        for pair in pairs.chunks_exact(2) {
            let index = usize::try_from(pair[0])
                .ok()
                .filter(|i| *i < scopes.len())
                .ok_or_else(reply::malformed)?;
            let scope = scopes[index].1;
            if pair[1] != 1 {
                waiting = true;
                continue;
            }
            if failure.is_some() {
                // Give the lock back without loading: the admission fails.
                loaded.push((index, None));
                continue;
            }
            let since = Window::ALL.map(|w| bounds.start(w));
            match self.baseline.spent_since(scope, &since).await {
                Ok(spent) => loaded.push((index, Some(spent))),
                Err(e) => {
                    tracing::warn!(?scope, "loading the limit baseline: {e}");
                    failure = Some(e);
                    loaded.push((index, None));
                }
            }
        }
        if !loaded.is_empty() {
            let mut inv = SEED.prepare_invoke();
            for (i, _) in &loaded {
                for k in scopes[*i].0.seed(bounds) {
                    inv.key(k);
                }
            }
            inv.arg(token);
            for ttl in period_ttls(self.clock.now(), bounds) {
                inv.arg(ttl);
            }
            inv.arg(loaded.len());
            for (_, spent) in &loaded {
                inv.arg(if spent.is_some() { "1" } else { "0" });
                let spent = spent.as_deref().unwrap_or_default();
                let at = |w: usize| spent.get(w).copied().unwrap_or_default();
                for w in 0..Window::ALL.len() {
                    inv.arg(at(w).tokens);
                }
                for w in 0..Window::ALL.len() {
                    inv.arg(at(w).cost_micro_usd);
                }
            }
            let mut conn = self.redis.conn.clone();
            let seeded: Result<i64, _> = inv.invoke_async(&mut conn).await;
            if let Err(e) = seeded {
                if failure.is_none() {
                    return Err(self.unavailable(&e));
                }
            }
        }
        match failure {
            Some(e) => Err(AdmitError::Unavailable(e)),
            None => Ok(waiting),
        }
    }
}

/// TTLs of the period keys: until the period ends plus a margin; the
/// total counter, which never ends, for a while after its last use.
fn period_ttls(now: DateTime<Utc>, bounds: &Bounds) -> [i64; 4] {
    Window::ALL.map(|w| match bounds.end(w) {
        Some(end) => (end - now).num_milliseconds().max(0) + PERIOD_MARGIN_MS,
        None => TOTAL_IDLE_MS,
    })
}

/// A scope's limits as script arguments: unlimited, concurrency, rpm, tpm,
/// then tokens and cost (micro-USD) per window. `None` (reading a scope's
/// counters) counts as limited, so a cold scope is loaded.
fn push_limits(inv: &mut redis::ScriptInvocation<'_>, limits: Option<&KeyLimits>) {
    let Some(l) = limits else {
        inv.arg(0);
        for _ in 0..11 {
            inv.arg(0);
        }
        return;
    };
    inv.arg(i32::from(l.is_unlimited()))
        .arg(l.concurrency)
        .arg(l.requests_per_minute)
        .arg(l.tokens_per_minute);
    let windows = Window::ALL.map(|w| aicarpool_core::limit::window_limits(l, w));
    for (tokens, _) in windows {
        inv.arg(tokens);
    }
    for (_, cost) in windows {
        inv.arg(cost);
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn flush(&self) {
        RedisLimiter::flush(self).await;
    }

    async fn ready(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| e.to_string())
    }

    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Permit, AdmitError> {
        let mut scopes: Vec<(Scope, KeyLimits)> = Vec::with_capacity(request.scopes.len());
        for s in request.scopes {
            if !scopes.iter().any(|(t, _)| t == s.scope) {
                scopes.push((s.scope.clone(), s.limits.clone()));
            }
        }
        if scopes.is_empty() {
            return Ok(Permit::unlimited());
        }
        let reserve = request.reserve;
        // Admission runs in a task of its own: once the script has taken a
        // lease and a reservation, the permit holding them is dropped (and
        // so gives them back) even when the caller stops waiting, as when
        // a client disconnects. Cancelled mid-call, they would be held
        // until the lease TTL.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let this = self.clone();
                runtime
                    .spawn(async move { this.admit_owned(scopes, reserve).await })
                    .await
                    .map_err(|e| AdmitError::Unavailable(format!("admission failed: {e}")))?
            }
            Err(_) => self.admit_owned(scopes, reserve).await,
        }
    }

    async fn usage(&self, scope: &Scope) -> Result<ScopeUsage, AdmitError> {
        let keyed = [(self.keys(scope), scope, None)];
        let ticket = aicarpool_core::id::new_id();
        let (reply, _, _) = self.run("usage", &keyed, Spend::default(), &ticket).await?;
        reply::usage(&reply)
    }
}

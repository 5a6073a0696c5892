//! The limiter conformance suite: one contract for every [`Limiter`].
//!
//! The in-memory limiter and the shared ones (Redis) run [`run_all`] from
//! their tests, so they refuse, count and report headroom alike. Each
//! check builds fresh limiters through the caller's factory, which gets a
//! [`LimiterSetup`]: the baseline to seed counters from, a
//! [`ManualClock`] the check drives, and the time zone of the calendar
//! windows. Scopes get fresh ids, so checks never see each other's
//! counters even on one shared Redis.
//!
//! A shared limiter may settle in the background: checks wait (briefly,
//! in real time) for settlements to show in [`Limiter::usage`] before
//! reading or admitting what depends on them.
//!
//! ```
//! # async fn conformance() {
//! use std::sync::Arc;
//!
//! use aicarpool_core::limit::{InMemoryLimiter, Limiter};
//! use aicarpool_core::testing::limiter::{run_all, LimiterSetup};
//!
//! run_all(|s: LimiterSetup| async move {
//!     Arc::new(InMemoryLimiter::with_clock(s.baseline, s.tz, s.clock)) as Arc<dyn Limiter>
//! })
//! .await;
//! # }
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::id::new_id;
use crate::limit::{
    AdmissionRequest, AdmitError, Headroom, LimitKind, Limiter, ManualClock, NoBaseline, Permit,
    Refusal, Scope, ScopeUsage, ScopedLimits, Spend, UsageBaseline, Window,
};
use crate::limits::KeyLimits;

/// What a limiter under test is built from.
#[derive(Debug, Clone)]
pub struct LimiterSetup {
    /// Where counters of a scope seen for the first time come from.
    pub baseline: Arc<dyn UsageBaseline>,
    /// The limiter's clock; the check moves it.
    pub clock: Arc<ManualClock>,
    /// The time zone of daily, weekly and monthly windows.
    pub tz: Tz,
}

/// Builds a fresh limiter: a new process, or a new namespace in a shared
/// store. Any `Fn(LimiterSetup) -> impl Future<Output = Arc<dyn Limiter>>`.
pub trait MakeLimiter {
    fn make(&self, setup: LimiterSetup) -> impl Future<Output = Arc<dyn Limiter>>;
}

impl<F, Fut> MakeLimiter for F
where
    F: Fn(LimiterSetup) -> Fut,
    Fut: Future<Output = Arc<dyn Limiter>>,
{
    fn make(&self, setup: LimiterSetup) -> impl Future<Output = Arc<dyn Limiter>> {
        self(setup)
    }
}

/// Runs every check of the suite.
pub async fn run_all(make: impl MakeLimiter) {
    every_scope_must_allow(&make).await;
    requests_per_minute(&make).await;
    tokens_per_minute(&make).await;
    concurrency(&make).await;
    settlement(&make).await;
    release_on_drop(&make).await;
    daily_window_in_time_zone(&make).await;
    monthly_budget(&make).await;
    baseline(&make).await;
    concurrent_budget(&make).await;
    remaining_headroom(&make).await;
}

// ---------------------------------------------------------------- fixtures

/// A baseline of recorded spend that counts how often it is asked, and
/// may take its time answering (to overlap concurrent loads).
#[derive(Debug, Default)]
pub struct SpendLog {
    records: Mutex<Vec<(Scope, DateTime<Utc>, Spend)>>,
    calls: AtomicUsize,
    delay: Option<Duration>,
}

impl SpendLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers each query only after `delay` (real time).
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            ..Self::default()
        }
    }

    /// Records that `scope` spent `spend` at `at`.
    pub fn add(&self, scope: &Scope, at: DateTime<Utc>, spend: Spend) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.push((scope.clone(), at, spend));
    }

    /// How many times the baseline was asked.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl UsageBaseline for SpendLog {
    async fn spent_since(
        &self,
        scope: &Scope,
        since: &[DateTime<Utc>],
    ) -> Result<Vec<Spend>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        Ok(since
            .iter()
            .map(|t| {
                let mut sum = Spend::default();
                for (s, at, spend) in records.iter() {
                    if s == scope && at >= t {
                        sum.add(*spend);
                    }
                }
                sum
            })
            .collect())
    }
}

/// An instant given in RFC 3339.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

pub fn spend(tokens: u64, cost_micro_usd: i64) -> Spend {
    Spend {
        tokens,
        cost_micro_usd,
    }
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

/// A limiter from `make` with its clock at `t0`.
async fn limiter(
    make: &impl MakeLimiter,
    baseline: Arc<dyn UsageBaseline>,
    t0: &str,
    tz: Tz,
) -> (Arc<dyn Limiter>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at(t0)));
    let l = make
        .make(LimiterSetup {
            baseline,
            clock: clock.clone(),
            tz,
        })
        .await;
    (l, clock)
}

/// Admits a request under `scopes`, each with its limits.
pub async fn admit(
    l: &dyn Limiter,
    scopes: &[(&Scope, &KeyLimits)],
    reserve: Spend,
) -> Result<Permit, AdmitError> {
    l.admit(AdmissionRequest {
        scopes: scopes
            .iter()
            .map(|(scope, limits)| ScopedLimits { scope, limits })
            .collect(),
        reserve,
    })
    .await
}

/// The refusal of a request that had to be refused.
#[track_caller]
pub fn refused(r: Result<Permit, AdmitError>) -> Refusal {
    match r {
        Err(AdmitError::Refused(r)) => r,
        Err(e) => panic!("expected a refusal, got {e:?}"),
        Ok(p) => panic!("expected a refusal, got a permit {:?}", p.remaining()),
    }
}

/// Waits until `scope`'s counters satisfy `ok` (settlements of a shared
/// limiter may land a moment later).
pub async fn eventually(
    l: &dyn Limiter,
    scope: &Scope,
    what: &str,
    ok: impl Fn(&ScopeUsage) -> bool,
) -> ScopeUsage {
    let mut u = l.usage(scope).await.expect("usage");
    for _ in 0..1_000 {
        if ok(&u) {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        u = l.usage(scope).await.expect("usage");
    }
    panic!("{what}: {scope:?} never got there: {u:?}");
}

/// Waits until nothing is in flight or reserved in `scope`.
pub async fn quiet(l: &dyn Limiter, scope: &Scope) -> ScopeUsage {
    eventually(l, scope, "settled", |u| {
        u.in_flight == 0 && u.reserved == Spend::default()
    })
    .await
}

fn one_of_each() -> [Scope; 5] {
    let group = new_id();
    [
        Scope::Key(new_id()),
        Scope::Member {
            group_id: group.clone(),
            user_id: new_id(),
        },
        Scope::Group(group),
        Scope::Department(new_id()),
        Scope::Enterprise(new_id()),
    ]
}

fn rpm(n: u32) -> KeyLimits {
    KeyLimits {
        requests_per_minute: n,
        ..Default::default()
    }
}

// ------------------------------------------------------------------ checks

/// Each scope kind refuses on its own; a refusal takes nothing anywhere,
/// and settlement counts in every scope.
pub async fn every_scope_must_allow(make: &impl MakeLimiter) {
    for target in 0..5 {
        let (l, _) = limiter(make, Arc::new(NoBaseline), "2026-05-05T10:00:00Z", Tz::UTC).await;
        let scopes = one_of_each();
        let mut limits = vec![
            KeyLimits {
                concurrency: 10,
                requests_per_minute: 10,
                ..Default::default()
            };
            5
        ];
        limits[target].tokens.daily = 100;
        // Not in lock order: the limiter must not care.
        let req: Vec<_> = [4, 2, 0, 3, 1]
            .into_iter()
            .map(|i| (&scopes[i], &limits[i]))
            .collect();
        let p = admit(&*l, &req, spend(60, 0)).await.unwrap();
        let h = p.remaining().quota_tokens.unwrap();
        assert_eq!((h.scope, h.remaining), (scopes[target].kind(), 40));
        assert_eq!(p.remaining().concurrency.unwrap().remaining, 9);
        // 60 < 100 left room: admitted, and may overshoot.
        let q = admit(&*l, &req, spend(60, 0)).await.unwrap();
        let r = refused(admit(&*l, &req, spend(1, 0)).await);
        assert_eq!(
            r,
            Refusal {
                scope: scopes[target].clone(),
                kind: LimitKind::Tokens(Window::Daily),
                limit: 100,
                used: 120,
                retry_after: secs(2),
            },
            "in flight, not settled, holds the room"
        );
        for s in &scopes {
            let u = l.usage(s).await.unwrap();
            assert_eq!((u.in_flight, u.requests_last_minute), (2, 2), "{s:?}");
            assert_eq!(u.reserved, spend(120, 0), "{s:?}");
        }
        p.settle(spend(30, 7));
        drop(q);
        for s in &scopes {
            let u = quiet(&*l, s).await;
            for w in Window::ALL {
                assert_eq!(u.settled(w), spend(30, 7), "{s:?} {w:?}");
            }
        }
    }
}

/// `requestsPerMinute` is exact at the boundary and frees as the rolling
/// minute moves on.
pub async fn requests_per_minute(make: &impl MakeLimiter) {
    let t0 = at("2026-04-01T12:00:00Z");
    let (l, clock) = limiter(make, Arc::new(NoBaseline), "2026-04-01T12:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let limits = rpm(3);
    let req = [(&key, &limits)];
    let s = |n| chrono::Duration::milliseconds(n);
    let p = admit(&*l, &req, spend(1, 0)).await.unwrap();
    assert_eq!(
        p.remaining().requests,
        Some(Headroom {
            scope: "key",
            window: None,
            limit: 3,
            remaining: 2,
            reset: Some(t0 + s(60_000)),
        })
    );
    p.settle(spend(1, 0));
    clock.set(t0 + s(10_000));
    drop(admit(&*l, &req, spend(1, 0)).await.unwrap());
    clock.set(t0 + s(20_000));
    let p = admit(&*l, &req, spend(1, 0)).await.unwrap();
    assert_eq!(p.remaining().requests.unwrap().remaining, 0);
    drop(p);

    clock.set(t0 + s(59_999));
    let r = refused(admit(&*l, &req, spend(1, 0)).await);
    assert_eq!(
        r,
        Refusal {
            scope: key.clone(),
            kind: LimitKind::RequestsPerMinute,
            limit: 3,
            used: 3,
            retry_after: Some(Duration::from_millis(1)),
        }
    );
    assert_eq!(l.usage(&key).await.unwrap().requests_last_minute, 3);
    clock.set(t0 + s(60_000));
    let p = admit(&*l, &req, spend(1, 0)).await.unwrap();
    assert_eq!(
        p.remaining().requests.unwrap().reset,
        Some(t0 + s(70_000)),
        "the oldest admission left is 12:00:10"
    );
    // The next slot frees when the admission of 12:00:10 ages out.
    let r = refused(admit(&*l, &req, spend(1, 0)).await);
    assert_eq!(r.retry_after, secs(10));
    drop(p);
    clock.set(t0 + s(200_000));
    assert_eq!(l.usage(&key).await.unwrap().requests_last_minute, 0);
    for _ in 0..3 {
        drop(admit(&*l, &req, spend(1, 0)).await.unwrap());
    }
    refused(admit(&*l, &req, spend(1, 0)).await);
}

/// `tokensPerMinute` counts reservations, then settled tokens for a
/// rolling minute.
pub async fn tokens_per_minute(make: &impl MakeLimiter) {
    let t0 = at("2026-04-01T12:00:00Z");
    let (l, clock) = limiter(make, Arc::new(NoBaseline), "2026-04-01T12:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let limits = KeyLimits {
        tokens_per_minute: 100,
        ..Default::default()
    };
    let req = [(&key, &limits)];
    let p1 = admit(&*l, &req, spend(60, 0)).await.unwrap();
    let h = p1.remaining().tokens.unwrap();
    assert_eq!((h.limit, h.remaining), (100, 40));
    let p2 = admit(&*l, &req, spend(60, 0)).await.unwrap();
    assert_eq!(p2.remaining().tokens.unwrap().remaining, 0);
    let r = refused(admit(&*l, &req, spend(1, 0)).await);
    assert_eq!(
        (r.kind, r.limit, r.used, r.retry_after),
        (LimitKind::TokensPerMinute, 100, 120, secs(2))
    );
    p1.settle(spend(50, 0));
    p2.settle(spend(50, 0));
    quiet(&*l, &key).await;
    let r = refused(admit(&*l, &req, spend(1, 0)).await);
    assert_eq!((r.used, r.retry_after), (100, secs(60)));
    clock.set(t0 + chrono::Duration::seconds(30));
    let r = refused(admit(&*l, &req, spend(1, 0)).await);
    assert_eq!(r.retry_after, secs(30));
    clock.set(t0 + chrono::Duration::seconds(60));
    let p = admit(&*l, &req, spend(1, 0)).await.unwrap();
    assert_eq!(p.remaining().tokens.unwrap().remaining, 99);
}

/// `concurrency` counts leases; ending one frees the slot early while the
/// reservation stays until settlement.
pub async fn concurrency(make: &impl MakeLimiter) {
    let (l, _) = limiter(make, Arc::new(NoBaseline), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let limits = KeyLimits {
        concurrency: 2,
        ..Default::default()
    };
    let req = [(&key, &limits)];
    let mut p1 = admit(&*l, &req, spend(10, 0)).await.unwrap();
    assert_eq!(p1.remaining().concurrency.unwrap().remaining, 1);
    let p2 = admit(&*l, &req, spend(10, 0)).await.unwrap();
    assert_eq!(p2.remaining().concurrency.unwrap().remaining, 0);
    let r = refused(admit(&*l, &req, spend(10, 0)).await);
    assert_eq!(
        r,
        Refusal {
            scope: key.clone(),
            kind: LimitKind::Concurrency,
            limit: 2,
            used: 2,
            retry_after: secs(1),
        }
    );
    p1.end_lease();
    let u = eventually(&*l, &key, "lease ended", |u| u.in_flight == 1).await;
    assert_eq!(u.reserved, spend(20, 0), "the reservation stays");
    let p3 = admit(&*l, &req, spend(10, 0)).await.unwrap();
    refused(admit(&*l, &req, spend(10, 0)).await);
    p1.settle(spend(5, 0));
    let u = eventually(&*l, &key, "settled", |u| u.reserved == spend(20, 0)).await;
    assert_eq!(u.in_flight, 2, "an ended lease is not given back twice");
    drop(p2);
    drop(p3);
    let u = quiet(&*l, &key).await;
    assert_eq!(u.settled(Window::Total), spend(5, 0));
}

/// Settlement replaces the reservation with the spend, lower or higher;
/// a dropped permit counts nothing.
pub async fn settlement(make: &impl MakeLimiter) {
    let (l, _) = limiter(make, Arc::new(NoBaseline), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let mut limits = KeyLimits::default();
    limits.tokens.daily = 1_000;
    limits.cost_usd.daily = 1.0;
    let req = [(&key, &limits)];
    let p = admit(&*l, &req, spend(100, 1_000)).await.unwrap();
    let u = l.usage(&key).await.unwrap();
    assert_eq!((u.reserved, u.in_flight), (spend(100, 1_000), 1));
    p.settle(spend(40, 400));
    let u = quiet(&*l, &key).await;
    for w in Window::ALL {
        assert_eq!(u.settled(w), spend(40, 400), "{w:?}");
    }
    admit(&*l, &req, spend(100, 1_000))
        .await
        .unwrap()
        .settle(spend(250, 2_500));
    let u = quiet(&*l, &key).await;
    assert_eq!(u.settled(Window::Daily), spend(290, 2_900));
    let p = admit(&*l, &req, spend(100, 1_000)).await.unwrap();
    let h = p.remaining().quota_tokens.unwrap();
    assert_eq!((h.window, h.remaining), (Some(Window::Daily), 610));
    let h = p.remaining().quota_cost.unwrap();
    assert_eq!(h.remaining, 1_000_000 - 2_900 - 1_000);
    drop(p);
    let u = quiet(&*l, &key).await;
    assert_eq!(u.settled(Window::Total), spend(290, 2_900));
}

/// Dropping a permit — also in a panicking task — gives everything back.
pub async fn release_on_drop(make: &impl MakeLimiter) {
    let (l, _) = limiter(make, Arc::new(NoBaseline), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let limits = KeyLimits {
        concurrency: 1,
        tokens_per_minute: 1_000,
        ..Default::default()
    };
    let req = [(&key, &limits)];
    let p = admit(&*l, &req, spend(500, 0)).await.unwrap();
    refused(admit(&*l, &req, spend(500, 0)).await);
    drop(p);
    quiet(&*l, &key).await;
    let p = admit(&*l, &req, spend(500, 0)).await.unwrap();
    let task = tokio::spawn(async move {
        let _held = p;
        panic!("boom (expected by the limiter conformance suite)");
    });
    assert!(task.await.is_err());
    let u = quiet(&*l, &key).await;
    assert_eq!(u.settled(Window::Total), Spend::default());
    drop(admit(&*l, &req, spend(500, 0)).await.unwrap());
}

/// The daily quota resets at midnight in the limiter's time zone; the
/// week and month go on.
pub async fn daily_window_in_time_zone(make: &impl MakeLimiter) {
    // 22:00 UTC is 06:00 the next day in Shanghai; that day ends 16:00 UTC.
    let tz: Tz = "Asia/Shanghai".parse().expect("a time zone");
    let (l, clock) = limiter(make, Arc::new(NoBaseline), "2026-03-10T22:00:00Z", tz).await;
    let member = Scope::Member {
        group_id: new_id(),
        user_id: new_id(),
    };
    let mut limits = KeyLimits::default();
    limits.tokens.daily = 300;
    let req = [(&member, &limits)];
    let p = admit(&*l, &req, spend(10, 0)).await.unwrap();
    let h = p.remaining().quota_tokens.unwrap();
    assert_eq!(
        (h.scope, h.window, h.reset),
        (
            "member",
            Some(Window::Daily),
            Some(at("2026-03-11T16:00:00Z"))
        )
    );
    p.settle(spend(337, 0));
    quiet(&*l, &member).await;
    let r = refused(admit(&*l, &req, spend(10, 0)).await);
    assert_eq!(
        (r.kind, r.limit, r.used, r.retry_after),
        (LimitKind::Tokens(Window::Daily), 300, 337, secs(64_800))
    );
    clock.set(at("2026-03-11T15:59:59Z"));
    let r = refused(admit(&*l, &req, spend(10, 0)).await);
    assert_eq!(r.retry_after, secs(1));
    clock.set(at("2026-03-11T16:00:00Z"));
    drop(admit(&*l, &req, spend(10, 0)).await.unwrap());
    let u = quiet(&*l, &member).await;
    assert_eq!(u.settled(Window::Daily), Spend::default());
    for w in [Window::Weekly, Window::Monthly, Window::Total] {
        assert_eq!(u.settled(w).tokens, 337, "{w:?}");
    }
}

/// A monthly budget refuses until the month ends, then starts over.
pub async fn monthly_budget(make: &impl MakeLimiter) {
    let (l, clock) = limiter(make, Arc::new(NoBaseline), "2026-04-15T12:00:00Z", Tz::UTC).await;
    let group = Scope::Group(new_id());
    let mut limits = KeyLimits::default();
    limits.cost_usd.monthly = 0.003;
    let req = [(&group, &limits)];
    for _ in 0..2 {
        let p = admit(&*l, &req, spend(100, 2_000)).await.unwrap();
        p.settle(spend(50, 1_845));
        quiet(&*l, &group).await;
    }
    let r = refused(admit(&*l, &req, spend(100, 2_000)).await);
    assert_eq!(
        r,
        Refusal {
            scope: group.clone(),
            kind: LimitKind::Cost(Window::Monthly),
            limit: 3_000,
            used: 3_690,
            retry_after: secs(15 * 86_400 + 12 * 3_600),
        }
    );
    clock.set(at("2026-04-30T23:59:59.999Z"));
    let r = refused(admit(&*l, &req, spend(100, 2_000)).await);
    assert_eq!(r.retry_after, Some(Duration::from_millis(1)));
    clock.set(at("2026-05-01T00:00:00Z"));
    let p = admit(&*l, &req, spend(100, 2_000)).await.unwrap();
    assert_eq!(p.remaining().quota_cost.unwrap().remaining, 1_000);
    drop(p);
    let u = quiet(&*l, &group).await;
    assert_eq!(u.settled(Window::Monthly), Spend::default());
    assert_eq!(u.settled(Window::Total), spend(100, 3_690));
}

/// Counters of a scope seen for the first time come from the baseline,
/// once; a scope without limits and counters costs no query.
pub async fn baseline(make: &impl MakeLimiter) {
    let key = Scope::Key(new_id());
    let log = Arc::new(SpendLog::new());
    log.add(&key, at("2026-05-05T08:00:00Z"), spend(600, 500_000));
    log.add(&key, at("2026-04-20T00:00:00Z"), spend(1_000, 100_000));
    // Tuesday 5 May: the week began on Monday the 4th.
    let (l, _) = limiter(make, log.clone(), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let u = l.usage(&key).await.unwrap();
    assert_eq!(u.settled(Window::Daily), spend(600, 500_000));
    assert_eq!(u.settled(Window::Weekly), spend(600, 500_000));
    assert_eq!(u.settled(Window::Monthly), spend(600, 500_000));
    assert_eq!(u.settled(Window::Total), spend(1_600, 600_000));
    let mut limits = KeyLimits::default();
    limits.tokens.daily = 1_000;
    limits.cost_usd.total = 1.0;
    let req = [(&key, &limits)];
    let p = admit(&*l, &req, spend(100, 1_000)).await.unwrap();
    assert_eq!(p.remaining().quota_tokens.unwrap().remaining, 300);
    p.settle(spend(500, 1_000));
    quiet(&*l, &key).await;
    let r = refused(admit(&*l, &req, spend(100, 1_000)).await);
    assert_eq!(
        (r.kind, r.used, r.retry_after),
        (LimitKind::Tokens(Window::Daily), 1_100, secs(14 * 3_600))
    );
    assert_eq!(log.calls(), 1, "loaded once");

    // A fresh limiter over the same history refuses as the first would.
    let (l2, _) = limiter(make, log.clone(), "2026-05-05T10:00:00Z", Tz::UTC).await;
    limits.tokens.daily = 500;
    let r = refused(admit(&*l2, &[(&key, &limits)], spend(1, 0)).await);
    assert_eq!(
        (r.limit, r.used, r.retry_after),
        (500, 600, secs(14 * 3_600))
    );

    // No limits, no counters: no query, no headroom.
    let fresh = Scope::Key(new_id());
    let log = Arc::new(SpendLog::new());
    log.add(&fresh, at("2026-05-05T08:00:00Z"), spend(10, 10));
    let (l3, _) = limiter(make, log.clone(), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let none = KeyLimits::default();
    let p = admit(&*l3, &[(&fresh, &none)], spend(5, 5)).await.unwrap();
    assert!(p.remaining().is_empty());
    p.settle(spend(5, 5));
    assert_eq!(log.calls(), 0);
    // Limited once, the scope is counted from then on, limits or not.
    let limited = rpm(100);
    let p1 = admit(&*l3, &[(&fresh, &limited)], spend(5, 5))
        .await
        .unwrap();
    assert_eq!(log.calls(), 1);
    let p2 = admit(&*l3, &[(&fresh, &none)], spend(5, 5)).await.unwrap();
    let u = l3.usage(&fresh).await.unwrap();
    assert_eq!((u.in_flight, u.reserved), (2, spend(10, 10)));
    p1.settle(spend(1, 1));
    p2.settle(spend(2, 2));
    let u = quiet(&*l3, &fresh).await;
    assert_eq!(u.settled(Window::Total), spend(13, 13));
    assert_eq!(log.calls(), 1);
}

/// 200 requests at once against a budget that fits about 20: the spend
/// never passes the budget by more than one reservation, and what is left
/// of it stays usable to its end.
pub async fn concurrent_budget(make: &impl MakeLimiter) {
    let per_request = 1_845i64;
    let reservation = 2_000i64;
    let budget = 20 * per_request;
    let (l, _) = limiter(make, Arc::new(NoBaseline), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let mut limits = KeyLimits::default();
    limits.cost_usd.total = budget as f64 / 1e6;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (l, key, limits) = (l.clone(), key.clone(), limits.clone());
            tokio::spawn(async move {
                match admit(&*l, &[(&key, &limits)], spend(100, reservation)).await {
                    Ok(p) => {
                        for _ in 0..3 {
                            tokio::task::yield_now().await;
                        }
                        p.settle(spend(50, per_request));
                        true
                    }
                    Err(AdmitError::Refused(r)) => {
                        assert_eq!(r.kind, LimitKind::Cost(Window::Total));
                        false
                    }
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut accepted = 0i64;
    for t in tasks {
        if t.await.unwrap() {
            accepted += 1;
        }
    }
    let u = quiet(&*l, &key).await;
    let spent = u.settled(Window::Total).cost_micro_usd;
    assert_eq!(spent, accepted * per_request);
    assert!(
        spent <= budget + reservation,
        "overspent: {spent} > {budget}"
    );
    // A refusal needs the budget full of reservations and spend: at least
    // 19 admitted; the bound on the spend allows at most 21.
    assert!((19..=21).contains(&accepted), "accepted {accepted}");
    for _ in 0..25 {
        match admit(&*l, &[(&key, &limits)], spend(100, reservation)).await {
            Ok(p) => {
                p.settle(spend(50, per_request));
                quiet(&*l, &key).await;
            }
            Err(AdmitError::Refused(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let spent = quiet(&*l, &key).await.settled(Window::Total).cost_micro_usd;
    assert!(spent >= budget, "the budget is usable to its end: {spent}");
    assert!(spent <= budget + reservation, "overspent: {spent}");
}

/// Headroom reports the tightest limit of each kind over all scopes.
pub async fn remaining_headroom(make: &impl MakeLimiter) {
    let t0 = at("2026-05-05T10:00:00Z");
    let (l, clock) = limiter(make, Arc::new(NoBaseline), "2026-05-05T10:00:00Z", Tz::UTC).await;
    let key = Scope::Key(new_id());
    let group = Scope::Group(new_id());
    let mut key_limits = KeyLimits {
        requests_per_minute: 10,
        tokens_per_minute: 100_000,
        concurrency: 4,
        ..Default::default()
    };
    key_limits.cost_usd.daily = 5.0;
    key_limits.tokens.monthly = 1_000_000;
    let mut group_limits = KeyLimits::default();
    group_limits.cost_usd.monthly = 2.0;
    let req = [(&group, &group_limits), (&key, &key_limits)];
    let minute = chrono::Duration::seconds(60);
    let june = Some(at("2026-06-01T00:00:00Z"));
    let p = admit(&*l, &req, spend(1_400, 12_345)).await.unwrap();
    let r = p.remaining().clone();
    let key_h = |limit, remaining, reset| Headroom {
        scope: "key",
        window: None,
        limit,
        remaining,
        reset,
    };
    assert_eq!(r.requests, Some(key_h(10, 9, Some(t0 + minute))));
    assert_eq!(r.tokens, Some(key_h(100_000, 98_600, Some(t0 + minute))));
    assert_eq!(r.concurrency, Some(key_h(4, 3, None)));
    assert_eq!(
        r.quota_tokens,
        Some(Headroom {
            scope: "key",
            window: Some(Window::Monthly),
            limit: 1_000_000,
            remaining: 998_600,
            reset: june,
        })
    );
    assert_eq!(
        r.quota_cost,
        Some(Headroom {
            scope: "group",
            window: Some(Window::Monthly),
            limit: 2_000_000,
            remaining: 2_000_000 - 12_345,
            reset: june,
        })
    );
    p.settle(spend(1_000, 10_000));
    quiet(&*l, &key).await;
    clock.set(t0 + chrono::Duration::seconds(30));
    let p = admit(&*l, &req, spend(1_400, 12_345)).await.unwrap();
    let r = p.remaining();
    assert_eq!(r.requests, Some(key_h(10, 8, Some(t0 + minute))));
    assert_eq!(
        r.tokens,
        Some(key_h(100_000, 97_600, Some(t0 + minute))),
        "settled tokens age out a minute after they were settled"
    );
    assert_eq!(r.concurrency, Some(key_h(4, 3, None)));
    assert_eq!(r.quota_cost.unwrap().remaining, 2_000_000 - 10_000 - 12_345);
    drop(p);
    let fresh = Scope::Key(new_id());
    let p = admit(&*l, &[(&fresh, &KeyLimits::default())], spend(1, 1))
        .await
        .unwrap();
    assert!(p.remaining().is_empty(), "no limits, no headroom");
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `RedisLimiter` against a real Redis: the limiter conformance suite, and
//! two limiters on one Redis standing for two gateway instances.
//!
//! Set `AICARPOOL_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`) to run
//! them; without it they print that they were skipped. Every test keeps
//! its keys under a prefix of its own and deletes them at the end, after
//! checking that each one expires.

use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::id::new_id;
use aicarpool_core::limit::{
    AdmitError, Clock, LimitKind, Limiter, ManualClock, NoBaseline, Scope, Spend, Tz,
    UsageBaseline, Window,
};
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::testing::limiter::{
    admit, at, quiet, refused, run_all, spend, LimiterSetup, SpendLog,
};
use aicarpool_store::{RedisLimiter, RedisLimiterError};

fn redis_url() -> Option<String> {
    let url = std::env::var("AICARPOOL_TEST_REDIS_URL").ok()?;
    (!url.is_empty()).then_some(url)
}

/// The test Redis, or skip the test.
macro_rules! redis_or_skip {
    () => {
        match redis_url() {
            Some(url) => url,
            None => {
                println!("skipped: AICARPOOL_TEST_REDIS_URL is not set");
                return;
            }
        }
    };
}

/// A prefix no other run uses.
fn fresh_prefix() -> String {
    format!("aicp-test:{}:", new_id())
}

async fn connect(
    url: &str,
    prefix: &str,
    baseline: Arc<dyn UsageBaseline>,
    clock: Arc<dyn Clock>,
) -> RedisLimiter {
    RedisLimiter::connect(url, baseline, Tz::UTC)
        .await
        .unwrap()
        .with_clock(clock)
        .with_prefix(prefix)
}

/// Checks that every key under `prefix` expires, then deletes them.
async fn clean_up(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{prefix}*");
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl != -1, "{key} never expires");
    }
    for chunk in keys.chunks(500) {
        let _: i64 = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

fn cost_total(micro_usd: i64) -> KeyLimits {
    let mut l = KeyLimits::default();
    l.cost_usd.total = micro_usd as f64 / 1e6;
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limiter_conforms() {
    let url = redis_or_skip!();
    let root = fresh_prefix();
    run_all(|s: LimiterSetup| {
        let (url, prefix) = (url.clone(), format!("{root}{}:", new_id()));
        async move {
            let l = RedisLimiter::connect(&url, s.baseline, s.tz)
                .await
                .unwrap()
                .with_clock(s.clock)
                .with_prefix(prefix);
            Arc::new(l) as Arc<dyn Limiter>
        }
    })
    .await;
    clean_up(&url, &root).await;
}

/// Two instances, 200 requests at once split between them, one budget
/// that fits about 20: never more than one reservation over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
    let a = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone()).await;
    let b = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone()).await;
    let (per_request, reservation) = (1_845i64, 2_000i64);
    let budget = 20 * per_request;
    let key = Scope::Key(new_id());
    let limits = cost_total(budget);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (key, limits) = (key.clone(), limits.clone());
            tokio::spawn(async move {
                match admit(&l, &[(&key, &limits)], spend(100, reservation)).await {
                    Ok(p) => {
                        tokio::task::yield_now().await;
                        p.settle(spend(50, per_request));
                        Some(i % 2)
                    }
                    Err(AdmitError::Refused(r)) => {
                        assert_eq!(r.kind, LimitKind::Cost(Window::Total));
                        None
                    }
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut accepted = [0i64; 2];
    for t in tasks {
        if let Some(instance) = t.await.unwrap() {
            accepted[instance] += 1;
        }
    }
    a.flush().await;
    b.flush().await;
    let u = quiet(&b, &key).await;
    let spent = u.settled(Window::Total).cost_micro_usd;
    let total = accepted[0] + accepted[1];
    println!(
        "budget {budget} µ$: accepted {accepted:?} (instance a, b), spent {spent} µ$, \
         largest reservation {reservation} µ$"
    );
    assert_eq!(spent, total * per_request);
    assert!(spent <= budget + reservation, "overspent: {spent}");
    assert!((19..=21).contains(&total), "accepted {total}");
    clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn requests_per_minute_are_exact_across_instances() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let t0 = at("2026-04-01T12:00:00Z");
    let clock = Arc::new(ManualClock::new(t0));
    let a = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone()).await;
    let b = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone()).await;
    let key = Scope::Key(new_id());
    let limits = KeyLimits {
        requests_per_minute: 5,
        ..Default::default()
    };
    let req = [(&key, &limits)];
    for i in 0..5 {
        clock.set(t0 + chrono::Duration::seconds(i));
        let l: &dyn Limiter = if i % 2 == 0 { &a } else { &b };
        let p = admit(l, &req, spend(1, 0)).await.unwrap();
        assert_eq!(p.remaining().requests.unwrap().remaining, (4 - i) as u64);
    }
    clock.set(t0 + chrono::Duration::milliseconds(59_999));
    for l in [&a, &b] {
        let r = refused(admit(l, &req, spend(1, 0)).await);
        assert_eq!(r.kind, LimitKind::RequestsPerMinute);
        assert_eq!((r.limit, r.used), (5, 5));
        assert_eq!(r.retry_after, Some(Duration::from_millis(1)));
    }
    clock.set(t0 + chrono::Duration::seconds(60));
    drop(admit(&b, &req, spend(1, 0)).await.unwrap());
    let r = refused(admit(&a, &req, spend(1, 0)).await);
    assert_eq!(r.retry_after, Some(Duration::from_secs(1)));
    a.flush().await;
    b.flush().await;
    clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn concurrency_holds_across_instances() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
    let a = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone()).await;
    let b = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone()).await;
    let member = Scope::Member {
        group_id: new_id(),
        user_id: new_id(),
    };
    let limits = KeyLimits {
        concurrency: 2,
        ..Default::default()
    };
    let req = [(&member, &limits)];
    let mut p = admit(&a, &req, spend(10, 0)).await.unwrap();
    let q = admit(&b, &req, spend(10, 0)).await.unwrap();
    for l in [&a, &b] {
        let r = refused(admit(l, &req, spend(10, 0)).await);
        assert_eq!((r.kind, r.limit, r.used), (LimitKind::Concurrency, 2, 2));
    }
    // The client of a's request left: b may take the slot.
    p.end_lease();
    a.flush().await;
    let r = admit(&b, &req, spend(10, 0)).await.unwrap();
    refused(admit(&a, &req, spend(10, 0)).await);
    p.settle(spend(3, 0));
    drop(q);
    drop(r);
    a.flush().await;
    b.flush().await;
    let u = quiet(&a, &member).await;
    assert_eq!(u.settled(Window::Total), spend(3, 0));
    clean_up(&url, &prefix).await;
}

/// Both instances start cold at once, with many requests each: every
/// scope's baseline is still queried once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_is_loaded_once_across_cold_instances() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
    let key = Scope::Key(new_id());
    let group = Scope::Group(new_id());
    let log = Arc::new(SpendLog::with_delay(Duration::from_millis(200)));
    log.add(&key, at("2026-05-05T09:00:00Z"), spend(400, 4_000));
    log.add(&group, at("2026-05-01T09:00:00Z"), spend(700, 7_000));
    let a = connect(&url, &prefix, log.clone(), clock.clone()).await;
    let b = connect(&url, &prefix, log.clone(), clock.clone()).await;
    let mut limits = KeyLimits::default();
    limits.tokens.daily = 1_000;
    let mut group_limits = KeyLimits::default();
    group_limits.tokens.monthly = 10_000;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let l = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (key, group, limits, group_limits) = (
                key.clone(),
                group.clone(),
                limits.clone(),
                group_limits.clone(),
            );
            tokio::spawn(async move {
                let req = [(&key, &limits), (&group, &group_limits)];
                admit(&l, &req, spend(10, 0)).await.unwrap()
            })
        })
        .collect();
    let mut permits = Vec::new();
    for t in tasks {
        permits.push(t.await.unwrap());
    }
    assert_eq!(log.calls(), 2, "one query per scope, fleet-wide");
    let u = a.usage(&key).await.unwrap();
    assert_eq!(u.settled(Window::Daily), spend(400, 4_000));
    assert_eq!((u.in_flight, u.reserved.tokens), (20, 200));
    let u = b.usage(&group).await.unwrap();
    assert_eq!(u.settled(Window::Monthly), spend(700, 7_000));
    assert_eq!(u.settled(Window::Daily), Spend::default());
    drop(permits);
    a.flush().await;
    b.flush().await;
    quiet(&a, &key).await;
    assert_eq!(log.calls(), 2);
    clean_up(&url, &prefix).await;
}

/// An instance that dies holding a lease and a reservation blocks the
/// scope only until the lease TTL; a request that outlived its lease
/// still counts its spend when it ends, and gives nothing back twice.
#[tokio::test]
async fn a_dead_instances_lease_is_reclaimed() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
    let ttl = Duration::from_secs(60);
    let a = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone())
        .await
        .with_lease_ttl(ttl);
    let b = connect(&url, &prefix, Arc::new(NoBaseline), clock.clone())
        .await
        .with_lease_ttl(ttl);
    assert_eq!(a.lease_ttl(), ttl);
    let key = Scope::Key(new_id());
    let mut limits = KeyLimits {
        concurrency: 2,
        ..Default::default()
    };
    limits.tokens.total = 1_000_000;
    let req = [(&key, &limits)];
    // Instance a dies with one request in flight, and one of its requests
    // runs past the lease TTL.
    std::mem::forget(admit(&a, &req, spend(100, 10)).await.unwrap());
    let slow = admit(&a, &req, spend(100, 10)).await.unwrap();
    refused(admit(&b, &req, spend(100, 10)).await);
    clock.advance(chrono::Duration::seconds(59));
    let r = refused(admit(&b, &req, spend(100, 10)).await);
    assert_eq!(r.kind, LimitKind::Concurrency);
    clock.advance(chrono::Duration::seconds(1));
    let p3 = admit(&b, &req, spend(100, 10)).await.unwrap();
    let p4 = admit(&b, &req, spend(100, 10)).await.unwrap();
    refused(admit(&b, &req, spend(100, 10)).await);
    let u = b.usage(&key).await.unwrap();
    assert_eq!((u.in_flight, u.reserved), (2, spend(200, 20)));
    slow.settle(spend(7, 70));
    a.flush().await;
    let u = b.usage(&key).await.unwrap();
    assert_eq!(
        (u.in_flight, u.reserved),
        (2, spend(200, 20)),
        "nothing back twice"
    );
    assert_eq!(u.settled(Window::Total), spend(7, 70));
    drop((p3, p4));
    b.flush().await;
    quiet(&b, &key).await;
    clean_up(&url, &prefix).await;
}

/// A caller that stops waiting (its client left) while the script runs
/// leaves nothing taken behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_admission_gives_everything_back() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
    let l = connect(&url, &prefix, Arc::new(NoBaseline), clock).await;
    let key = Scope::Key(new_id());
    let limits = KeyLimits {
        requests_per_minute: 10_000,
        concurrency: 10_000,
        ..Default::default()
    };
    let req = [(&key, &limits)];
    // Seeded first, so the cancelled admissions reach the script at once.
    drop(admit(&l, &req, spend(1, 1)).await.unwrap());
    for i in 0..100u64 {
        let wait = Duration::from_micros(20 * (i % 10));
        let cancelled = tokio::time::timeout(wait, admit(&l, &req, spend(10, 10)));
        if let Ok(p) = cancelled.await {
            drop(p.unwrap());
        }
    }
    let u = quiet(&l, &key).await;
    println!(
        "cancelled or not, {} admissions counted",
        u.requests_last_minute
    );
    assert!(u.requests_last_minute > 1, "some cancelled admissions ran");
    l.flush().await;
    clean_up(&url, &prefix).await;
}

/// No Redis: admissions fail as unavailable (503), quickly, and no message
/// or debug output shows the password. Needs no Redis, so it always runs.
#[tokio::test]
async fn unreachable_redis_is_unavailable_without_the_password() {
    let secret = "s3cret-Pa55word";
    let url = format!("redis://:{secret}@127.0.0.1:1/0");
    let started = std::time::Instant::now();
    let l = RedisLimiter::connect(&url, Arc::new(NoBaseline), Tz::UTC)
        .await
        .expect("connecting is lazy: a Redis that is down does not fail the start");
    assert!(!format!("{l:?}").contains(secret));
    assert!(format!("{l:?}").contains("127.0.0.1:1"));
    let key = Scope::Key(new_id());
    let limits = KeyLimits {
        requests_per_minute: 1,
        ..Default::default()
    };
    match admit(&l, &[(&key, &limits)], spend(1, 0)).await {
        Err(AdmitError::Unavailable(m)) => {
            assert!(!m.contains(secret), "{m}");
            assert!(m.contains("127.0.0.1:1"), "{m}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Nothing could refuse a request without limits: it goes through.
    let p = admit(&l, &[(&key, &KeyLimits::default())], spend(1, 0))
        .await
        .expect("no limits, no refusal");
    assert!(p.remaining().is_empty());
    match l.usage(&key).await {
        Err(AdmitError::Unavailable(m)) => assert!(!m.contains(secret), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match l.ping().await {
        Err(e @ RedisLimiterError::Unreachable { .. }) => {
            assert!(!e.to_string().contains(secret), "{e}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20), "fails fast");

    match RedisLimiter::connect(
        &format!("http://user:{secret}@127.0.0.1/"),
        Arc::new(NoBaseline),
        Tz::UTC,
    )
    .await
    {
        Err(e @ RedisLimiterError::Url(_)) => assert!(!e.to_string().contains(secret), "{e}"),
        other => panic!("expected a URL error, got {other:?}"),
    }
}

/// The invalidation bus opens Redis like the limiter: a Redis that is down
/// does not fail the start, publishing while it is away is only logged,
/// and nothing shows the password. Needs no Redis, so it always runs.
#[tokio::test]
async fn the_invalidation_bus_starts_without_redis() {
    use aicarpool_core::gateway::{Invalidation, InvalidationBus};
    use aicarpool_store::RedisInvalidationBus;

    let secret = "s3cret-Pa55word";
    let url = format!("redis://:{secret}@127.0.0.1:1/0");
    let bus = RedisInvalidationBus::connect(&url, "aicp-test:invalidate")
        .await
        .expect("connecting is lazy");
    assert!(!format!("{bus:?}").contains(secret));
    bus.publish(&Invalidation::Routes);
    let listener = bus.listen(|_| {});
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!listener.is_finished(), "the listener keeps trying");
    listener.abort();

    match RedisInvalidationBus::connect(&format!("http://user:{secret}@127.0.0.1/"), "c").await {
        Err(e @ RedisLimiterError::Url(_)) => assert!(!e.to_string().contains(secret), "{e}"),
        other => panic!("expected a URL error, got {other:?}"),
    }
}

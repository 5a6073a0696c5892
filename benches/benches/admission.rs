//! What member limits cost a request, next to what it costs to decide a
//! route (`router/plan_100_accounts` in `gateway_overhead`).
//!
//! - `admission/admit_settle_3_scopes_limited`: the reservation estimate,
//!   then `Limiter::admit` over key, member and group — each with
//!   requests and tokens per minute, concurrency, and daily, monthly and
//!   total token and cost quotas — and `Permit::settle` with the real
//!   usage: everything the gateway adds per Messages request for limits;
//! - `admission/admit_settle_typical`: what a carpool usually sets — the
//!   key a request rate and a daily budget, each member a daily token
//!   quota, the group a monthly budget;
//! - `admission/admit_settle_unlimited`: the same for a member with no
//!   limits anywhere (no counters are kept);
//! - `admission/reservation_estimate`: pricing the upper bound alone;
//! - with `AICARPOOL_TEST_REDIS_URL` set: `admission/redis_admit_settle_typical`,
//!   the typical case on the `RedisLimiter` several instances share (the
//!   admission script, then the settlement awaited), next to
//!   `admission/redis_ping`, one bare round trip to the same Redis: the
//!   baseline the limiter's cost is read against.
//!
//! The clock moves 50 ms per request, so the rolling minute holds ~1,200
//! admissions, as a busy group would; no limit is ever reached.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use aicarpool_core::limit::{
    AdmissionRequest, InMemoryLimiter, Limiter, ManualClock, NoBaseline, Scope, ScopedLimits,
    Spend, Tz,
};
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::pricing::Pricing;
use aicarpool_core::usage::Usage;
use aicarpool_store::RedisLimiter;
use criterion::{criterion_group, criterion_main, Criterion};

const MODEL: &str = "claude-sonnet-4-5";

/// Limits on every field, far from being reached.
fn busy_limits() -> KeyLimits {
    let mut l = KeyLimits {
        requests_per_minute: 100_000,
        tokens_per_minute: u64::MAX / 4,
        concurrency: 1_000,
        ..Default::default()
    };
    l.tokens.daily = u64::MAX / 4;
    l.tokens.monthly = u64::MAX / 4;
    l.cost_usd.daily = 1e9;
    l.cost_usd.monthly = 1e9;
    l.cost_usd.total = 1e9;
    l
}

/// Key: rate and daily budget; member: daily tokens; group: monthly budget.
fn typical_limits() -> [KeyLimits; 3] {
    let mut key = KeyLimits {
        requests_per_minute: 10_000,
        ..Default::default()
    };
    key.cost_usd.daily = 1e9;
    let mut member = KeyLimits::default();
    member.tokens.daily = u64::MAX / 4;
    let mut group = KeyLimits::default();
    group.cost_usd.monthly = 1e9;
    [key, member, group]
}

/// The usage the mock upstream reports for one request.
fn usage() -> Usage {
    Usage {
        input_tokens: 25,
        output_tokens: 12,
        cache_write_5m_tokens: 100,
        cache_write_1h_tokens: 200,
        cache_read_tokens: 50,
    }
}

/// Estimate, admit, settle: one request's limit work.
async fn one_request(
    limiter: &dyn Limiter,
    pricing: &Pricing,
    scopes: &[Scope; 3],
    limits: &[KeyLimits; 3],
) {
    // The captured Claude Code request is ~76 KB with max_tokens 32,000.
    let input = 76_000u64.div_ceil(4);
    let reserve = Spend {
        tokens: input + 32_000,
        cost_micro_usd: pricing.reservation_micro_usd(MODEL, input, 32_000),
    };
    let request = AdmissionRequest {
        scopes: scopes
            .iter()
            .zip(limits)
            .map(|(scope, limits)| ScopedLimits { scope, limits })
            .collect(),
        reserve,
    };
    let permit = limiter.admit(request).await.unwrap();
    black_box(permit.remaining());
    let u = usage();
    permit.settle(Spend::of(&u, pricing.cost_micro_usd(MODEL, &u)));
    // A shared limiter settles in the background; count that round trip.
    limiter.flush().await;
}

fn admission_benches(c: &mut Criterion) {
    // Timers and IO: the Redis client needs both.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pricing = Pricing::embedded();
    let scopes = [
        Scope::Key("key-1".into()),
        Scope::Member {
            group_id: "group-1".into(),
            user_id: "user-1".into(),
        },
        Scope::Group("group-1".into()),
    ];
    let mut group = c.benchmark_group("admission");

    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let limiter = InMemoryLimiter::with_clock(Arc::new(NoBaseline), Tz::UTC, clock.clone());
    let limited = [busy_limits(), busy_limits(), busy_limits()];
    group.bench_function("admit_settle_3_scopes_limited", |b| {
        b.to_async(&rt).iter(|| {
            clock.advance(chrono::Duration::milliseconds(50));
            one_request(&limiter, &pricing, &scopes, &limited)
        });
    });

    let clock2 = Arc::new(ManualClock::new(chrono::Utc::now()));
    let typical_limiter =
        InMemoryLimiter::with_clock(Arc::new(NoBaseline), Tz::UTC, clock2.clone());
    let typical = typical_limits();
    group.bench_function("admit_settle_typical", |b| {
        b.to_async(&rt).iter(|| {
            clock2.advance(chrono::Duration::milliseconds(50));
            one_request(&typical_limiter, &pricing, &scopes, &typical)
        });
    });

    let open = InMemoryLimiter::new(Arc::new(NoBaseline), Tz::UTC);
    let none = [
        KeyLimits::default(),
        KeyLimits::default(),
        KeyLimits::default(),
    ];
    group.bench_function("admit_settle_unlimited", |b| {
        b.to_async(&rt)
            .iter(|| one_request(&open, &pricing, &scopes, &none));
    });

    group.bench_function("reservation_estimate", |b| {
        b.iter(|| pricing.reservation_micro_usd(black_box(MODEL), black_box(19_000), 32_000));
    });

    if let Ok(url) = std::env::var("AICARPOOL_TEST_REDIS_URL") {
        redis_benches(&mut group, &rt, &url, &pricing, &scopes);
    } else {
        eprintln!("admission/redis_*: skipped, AICARPOOL_TEST_REDIS_URL is not set");
    }
    group.finish();
}

fn redis_benches(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    url: &str,
    pricing: &Pricing,
    scopes: &[Scope; 3],
) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    group.bench_function("redis_ping", |b| {
        b.to_async(rt).iter(|| {
            let mut conn = conn.clone();
            async move {
                let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            }
        });
    });

    let prefix = format!("aicp-bench:{}:", aicarpool_core::id::new_id());
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let limiter = rt
        .block_on(RedisLimiter::connect(url, Arc::new(NoBaseline), Tz::UTC))
        .unwrap()
        .with_clock(clock.clone())
        .with_prefix(prefix.clone());
    let typical = typical_limits();
    group.bench_function("redis_admit_settle_typical", |b| {
        b.to_async(rt).iter(|| {
            clock.advance(chrono::Duration::milliseconds(50));
            one_request(&limiter, pricing, scopes, &typical)
        });
    });

    // Every key has a TTL; removing them now keeps the Redis tidy.
    let keys: Vec<String> = rt
        .block_on(
            redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn),
        )
        .unwrap();
    if !keys.is_empty() {
        let _: () = rt
            .block_on(redis::cmd("DEL").arg(keys).query_async(&mut conn))
            .unwrap();
    }
}

criterion_group!(benches, admission_benches);
criterion_main!(benches);

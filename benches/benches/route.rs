//! One route decision of the SmartRouter, for pools of 1, 10, 100 and
//! 1,000 accounts, with 10,000 live sticky sessions in the table.
//!
//! - `route/sticky_hit/{n}`: a conversation whose account is eligible (the
//!   common case: every turn of a Claude Code session after the first);
//! - `route/new_session/{n}`: a conversation seen for the first time:
//!   tiers and weighted power-of-two-choices over the eligible accounts.
//!
//! The pools mix three priority tiers, weights 1–3, model lists and globs,
//! a concurrency cap, some load, and 5% of the accounts cooling. The plan
//! is asked for the gateway's usual five candidates (three attempts and
//! two spares). The cost should grow at most linearly with the pool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_benches::MODEL;
use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform, Protocol};
use aicarpool_core::router::session::{SessionId, SessionSource};
use aicarpool_core::router::{
    Candidate, Outcome, Report, RoutableAccount, RouteRequest, Router, SessionKey, SmartRouter,
    SmartRouterConfig, SystemClock,
};
use aicarpool_core::secret::Sealed;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SESSIONS: usize = 10_000;

fn pool(n: usize) -> Vec<Candidate> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            let models: Vec<String> = match i % 4 {
                0 => vec![],
                1 => vec!["claude-sonnet-*".into()],
                2 => vec![MODEL.into(), "claude-opus-*".into()],
                _ => vec!["claude-*".into()],
            };
            let priority = (i % 3) as i32 * 10;
            let weight = 1 + (i % 3) as u32;
            let account = Account {
                id: format!("acc{i:05}"),
                name: format!("account {i}"),
                platform: Platform::ClaudeApi,
                preset: None,
                base_url: Some(format!("https://relay-{i}.example.com")),
                owner: AccountOwner::Group("g".into()),
                models,
                model_map: Default::default(),
                serves: Vec::new(),
                priority,
                weight,
                max_concurrency: Some(8),
                proxy: None,
                enabled: true,
                credentials: Sealed::default(),
                created_at: now,
                updated_at: now,
            };
            let routable = RoutableAccount {
                base_url: account.base_url.clone().unwrap_or_default(),
                account,
                credentials: Credentials::default(),
                in_flight: Default::default(),
            };
            routable.in_flight.store((i % 5) as u32, Ordering::Relaxed);
            Candidate {
                account: Arc::new(routable),
                priority,
                weight,
                dedicated: false,
            }
        })
        .collect()
}

fn session(i: usize) -> SessionKey {
    SessionId::from_id(SessionSource::Header, &format!("session-{i}")).scoped("key")
}

/// A router that has seen the pool: 10k sessions bound across it, 5% of
/// the accounts cooling.
fn warmed(candidates: &[Candidate]) -> SmartRouter {
    let config = SmartRouterConfig {
        seed: Some(1),
        ..Default::default()
    };
    let router = SmartRouter::with_config(config, Arc::new(SystemClock));
    let ok = Outcome::Success {
        latency: Duration::from_millis(800),
    };
    for i in 0..SESSIONS {
        let c = &candidates[i % candidates.len()];
        let report = Report::new(&c.account.account.id, ok.clone()).session(Some(session(i)));
        router.report(&report);
    }
    for c in candidates.iter().step_by(20).skip(1) {
        router.report(&Report::new(&c.account.account.id, Outcome::Overloaded));
    }
    router
}

fn route_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for n in [1usize, 10, 100, 1000] {
        let candidates = pool(n);
        let router = warmed(&candidates);
        assert_eq!(router.stats().sticky_sessions, SESSIONS as u64);
        let request = |s: Option<SessionKey>| RouteRequest {
            session: s,
            max_candidates: 5,
            ..RouteRequest::new("g", "key", Protocol::Anthropic, MODEL)
        };
        let hit = request(Some(session(0)));
        let plan = router.plan(&hit, &candidates);
        assert_eq!(plan.sticky, aicarpool_core::router::StickyChoice::Hit);
        group.bench_with_input(BenchmarkId::new("sticky_hit", n), &n, |b, _| {
            b.iter(|| router.plan(black_box(&hit), black_box(&candidates)));
        });
        let fresh = request(Some(session(SESSIONS + 1)));
        assert!(!router.plan(&fresh, &candidates).candidates.is_empty());
        group.bench_with_input(BenchmarkId::new("new_session", n), &n, |b, _| {
            b.iter(|| router.plan(black_box(&fresh), black_box(&candidates)));
        });
    }
    group.finish();
}

criterion_group!(benches, route_benches);
criterion_main!(benches);

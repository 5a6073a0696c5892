//! The SmartRouter's decisions, one rule at a time, on a virtual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod router_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::account::Protocol;
use aicarpool_core::router::session::{SessionId, SessionSource};
use aicarpool_core::router::{
    Candidate, Clock, HealthState, Outcome, Report, RouteRequest, Router, SessionKey, SmartRouter,
    SmartRouterConfig, StickyChoice, VirtualClock,
};
use router_support::{candidate, headers, id, pool, unified, T0};

fn router(seed: u64) -> (SmartRouter, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new(T0));
    let config = SmartRouterConfig {
        seed: Some(seed),
        ..Default::default()
    };
    (SmartRouter::with_config(config, clock.clone()), clock)
}

fn request(session: Option<SessionKey>) -> RouteRequest<'static> {
    RouteRequest {
        session,
        max_candidates: 5,
        ..RouteRequest::new("g", "k", Protocol::Anthropic, "claude-sonnet-4-5")
    }
}

fn ok() -> Outcome {
    Outcome::Success {
        latency: Duration::from_millis(300),
    }
}

fn first(r: &SmartRouter, session: Option<SessionKey>, c: &[Candidate]) -> String {
    id(&r.plan(&request(session), c).candidates[0]).to_owned()
}

fn session(name: &str) -> SessionKey {
    SessionId::from_id(SessionSource::Header, name).scoped("key-1")
}

#[test]
fn a_session_sticks_and_moves_once_when_its_account_cools() {
    let (r, _clock) = router(7);
    let c = pool(4);
    let s = session("conversation-1");
    let plan = r.plan(&request(Some(s)), &c);
    assert_eq!(plan.sticky, StickyChoice::New);
    let bound = id(&plan.candidates[0]).to_owned();
    r.report(&Report::new(&bound, ok()).session(Some(s)));
    for _ in 0..50 {
        let plan = r.plan(&request(Some(s)), &c);
        assert_eq!(plan.sticky, StickyChoice::Hit);
        assert_eq!(id(&plan.candidates[0]), bound);
    }
    // Other sessions spread over the pool.
    let spread: std::collections::HashSet<String> = (0..40)
        .map(|i| first(&r, Some(session(&format!("other-{i}"))), &c))
        .collect();
    assert!(spread.len() >= 3, "{spread:?}");

    r.report(&Report::new(&bound, Outcome::RateLimited));
    let plan = r.plan(&request(Some(s)), &c);
    assert_eq!(plan.sticky, StickyChoice::Left);
    assert!(plan.candidates.iter().all(|x| id(x) != bound));
    assert_eq!(plan.held_back.rate_limited, 1);
    let moved_to = id(&plan.candidates[0]).to_owned();
    r.report(&Report::new(&moved_to, ok()).session(Some(s)));
    assert_eq!(first(&r, Some(s), &c), moved_to, "the session rebinds");
    let stats = r.stats();
    assert_eq!(stats.sticky_moves, 1);
    assert_eq!(stats.sticky_new, 1);
    assert_eq!(stats.sticky_left, 1);
    assert_eq!(r.health(&moved_to).unwrap().sticky_sessions, 1);
    assert_eq!(r.health(&bound).unwrap().sticky_sessions, 0);
}

#[test]
fn the_same_session_id_under_two_keys_is_two_sessions() {
    let (r, _clock) = router(1);
    let c = pool(8);
    let id_ = SessionId::from_id(SessionSource::Header, "same");
    let (a, b) = (id_.scoped("key-a"), id_.scoped("key-b"));
    r.report(&Report::new("a0", ok()).session(Some(a)));
    assert_eq!(r.plan(&request(Some(a)), &c).sticky, StickyChoice::Hit);
    assert_eq!(r.plan(&request(Some(b)), &c).sticky, StickyChoice::New);
}

#[test]
fn tiers_dedicated_first_then_priority_then_the_pool() {
    let (r, _clock) = router(3);
    let c = vec![
        candidate("pool-fast", 1, 1, false, None),
        candidate("ded-b", 20, 1, true, None),
        candidate("ded-a", 10, 1, true, None),
    ];
    for _ in 0..20 {
        let order: Vec<_> = r
            .plan(&request(None), &c)
            .candidates
            .iter()
            .map(|x| id(x).to_owned())
            .collect();
        assert_eq!(order, ["ded-a", "ded-b", "pool-fast"]);
    }
    // Dedicated accounts that cannot serve hand over to the pool.
    r.report(&Report::new("ded-a", Outcome::Overloaded));
    r.report(&Report::new(
        "ded-b",
        Outcome::CredentialsRejected {
            status: 401,
            reason: "refused".into(),
        },
    ));
    let plan = r.plan(&request(None), &c);
    assert_eq!(plan.candidates.len(), 1);
    assert_eq!(id(&plan.candidates[0]), "pool-fast");
    assert_eq!(plan.held_back.overloaded, 1);
    assert_eq!(plan.held_back.needs_attention, 1);
}

#[test]
fn cooling_until_the_unified_reset_then_one_probe_then_healthy() {
    let (r, clock) = router(5);
    let c = pool(2);
    let reset = T0 / 1000 + 1800;
    let h = unified("rejected", reset, 1.0);
    r.report(&Report::new("a0", Outcome::RateLimited).headers(&h));
    assert!(
        matches!(r.state("a0"), HealthState::Cooling { until_ms, .. } if until_ms == reset * 1000)
    );
    for _ in 0..100 {
        clock.advance(Duration::from_secs(17));
        if clock.now_ms() >= reset * 1000 {
            break;
        }
        let plan = r.plan(&request(None), &c);
        assert!(
            plan.candidates.iter().all(|x| id(x) == "a1"),
            "cooling is never planned"
        );
        assert!(r.begin("a0").is_none());
    }
    clock.set(reset * 1000);
    assert_eq!(r.state("a0"), HealthState::HalfOpen { probing: false });
    let probe = r.begin("a0").expect("the probe");
    assert!(probe.is_probe());
    assert!(r.begin("a0").is_none(), "exactly one probe in flight");
    let plan = r.plan(&request(None), &c);
    assert!(plan.candidates.iter().all(|x| id(x) == "a1"));
    assert_eq!(plan.held_back.probing, 1);
    r.report(&Report::new("a0", ok()));
    drop(probe);
    assert_eq!(r.state("a0"), HealthState::Healthy);
    assert!(r.begin("a0").is_some_and(|p| !p.is_probe()));
}

#[test]
fn a_dropped_probe_frees_the_slot() {
    let (r, clock) = router(5);
    r.report(&Report::new("a0", Outcome::Overloaded));
    clock.advance(Duration::from_secs(30));
    let probe = r.begin("a0").unwrap();
    assert!(r.begin("a0").is_none());
    drop(probe); // the client went away before an answer
    assert!(r.begin("a0").unwrap().is_probe());
}

#[test]
fn exactly_one_probe_among_racing_threads() {
    let (r, clock) = router(9);
    r.report(&Report::new("a0", Outcome::RateLimited));
    clock.advance(Duration::from_secs(5));
    let r = Arc::new(r);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (r, barrier) = (r.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // Hold the permit until every thread has tried.
                let permit = r.begin("a0");
                std::thread::sleep(Duration::from_millis(50));
                permit.is_some()
            })
        })
        .collect();
    let got: usize = handles
        .into_iter()
        .map(|h| usize::from(h.join().unwrap()))
        .sum();
    assert_eq!(got, 1);
}

#[test]
fn least_loaded_per_weight_wins() {
    let (r, _clock) = router(11);
    let c = vec![
        candidate("busy", 10, 1, false, None),
        candidate("idle", 10, 1, false, None),
        candidate("big", 10, 4, false, None),
    ];
    c[0].account.in_flight.store(5, Ordering::Relaxed);
    c[1].account.in_flight.store(2, Ordering::Relaxed);
    c[2].account.in_flight.store(4, Ordering::Relaxed); // 4/4 = 1 per weight
    let mut wins = std::collections::HashMap::new();
    for _ in 0..300 {
        *wins.entry(first(&r, None, &c)).or_insert(0) += 1;
    }
    assert_eq!(
        wins.get("busy"),
        None,
        "the busiest never wins a pair: {wins:?}"
    );
    assert!(wins["big"] > wins["idle"], "{wins:?}");
}

#[test]
fn a_warned_account_loses_and_the_soonest_reset_wins_a_tie() {
    let (r, _clock) = router(13);
    let c = pool(2);
    let soon = T0 / 1000 + 600;
    let late = T0 / 1000 + 7200;
    r.report(&Report::new("a0", ok()).headers(&unified("allowed", late, 0.2)));
    r.report(&Report::new("a1", ok()).headers(&unified("allowed", soon, 0.5)));
    for _ in 0..50 {
        assert_eq!(first(&r, None, &c), "a1", "use it before it resets");
    }
    r.report(&Report::new("a1", ok()).headers(&unified("allowed_warning", soon, 0.9)));
    for _ in 0..50 {
        assert_eq!(first(&r, None, &c), "a0", "a warned account loses");
    }
    let snap = r.health("a1").unwrap();
    assert_eq!(snap.unified.unwrap().five_hour.utilization, Some(0.9));
}

#[test]
fn saturated_and_disabled_accounts_are_left_out() {
    let (r, _clock) = router(17);
    let mut c = vec![
        candidate("full", 10, 1, false, Some(2)),
        candidate("open", 10, 1, false, Some(2)),
        candidate("off", 10, 1, false, None),
    ];
    c[0].account.in_flight.store(2, Ordering::Relaxed);
    let mut off = c[2].account.account.clone();
    off.enabled = false;
    c[2] = Candidate {
        account: Arc::new(aicarpool_core::router::RoutableAccount {
            account: off,
            credentials: c[2].account.credentials.clone(),
            base_url: c[2].account.base_url.clone(),
            in_flight: Default::default(),
        }),
        ..c[2].clone()
    };
    let plan = r.plan(&request(None), &c);
    assert_eq!(plan.serving, 2);
    assert_eq!(plan.held_back.saturated, 1);
    assert_eq!(plan.candidates.len(), 1);
    assert_eq!(id(&plan.candidates[0]), "open");
    let why = r.explain(&request(None), &c);
    assert_eq!(why.len(), 3);
    assert!(
        !why[0].eligible && why[0].reason.contains("concurrency limit"),
        "{why:?}"
    );
    assert!(why[1].eligible);
    assert_eq!(why[2].state, "disabled");
}

#[test]
fn needs_attention_until_an_admin_resets_it() {
    let (r, clock) = router(19);
    let c = pool(2);
    r.report(&Report::new(
        "a0",
        Outcome::CredentialsRejected {
            status: 403,
            reason: "refused".into(),
        },
    ));
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    assert_eq!(r.state("a0"), HealthState::NeedsAttention);
    let why = r.explain(&request(None), &c);
    assert!(
        !why[0].eligible && why[0].reason.contains("credentials"),
        "{why:?}"
    );
    r.reset("a0");
    assert_eq!(r.state("a0"), HealthState::Healthy);
    assert_eq!(r.plan(&request(None), &c).candidates.len(), 2);
}

#[test]
fn client_errors_do_not_count_but_three_5xx_in_a_minute_do() {
    let (r, clock) = router(23);
    for _ in 0..10 {
        r.report(&Report::new("a0", Outcome::ClientError { status: 400 }));
    }
    assert_eq!(r.state("a0"), HealthState::Healthy);
    let failed = || Outcome::Failed {
        status: Some(500),
        reason: "status 500".into(),
    };
    r.report(&Report::new("a0", failed()));
    clock.advance(Duration::from_secs(20));
    r.report(&Report::new("a0", failed()));
    assert_eq!(r.state("a0"), HealthState::Healthy);
    clock.advance(Duration::from_secs(20));
    r.report(&Report::new("a0", failed()));
    assert!(matches!(r.state("a0"), HealthState::Cooling { .. }));
}

#[test]
fn retry_after_as_an_http_date() {
    let (r, _clock) = router(29);
    let date = chrono::DateTime::from_timestamp_millis(T0 as i64 + 90_000)
        .unwrap()
        .to_rfc2822()
        .replace("+0000", "GMT");
    let h = headers(&[("retry-after", date)]);
    r.report(&Report::new("a0", Outcome::RateLimited).headers(&h));
    assert!(
        matches!(r.state("a0"), HealthState::Cooling { until_ms, .. } if until_ms == T0 + 90_000)
    );
}

#[test]
fn a_wait_named_in_the_body_cools_like_retry_after_and_is_capped_alike() {
    let (r, _clock) = router(31);
    let until = |id: &str| match r.state(id) {
        HealthState::Cooling { until_ms, .. } => until_ms,
        other => panic!("{other:?}"),
    };
    r.report(&Report::new("a0", Outcome::RateLimited).retry_after(Some(Duration::from_secs(37))));
    assert_eq!(until("a0"), T0 + 37_000);
    // The header wins when both name a wait.
    let h = headers(&[("retry-after", "5".into())]);
    r.report(
        &Report::new("a1", Outcome::RateLimited)
            .headers(&h)
            .retry_after(Some(Duration::from_secs(37))),
    );
    assert_eq!(until("a1"), T0 + 5_000);
    // A huge wait is capped at the longest cooling, as a huge header is.
    let max = aicarpool_core::router::HealthPolicy::default().max_cooling;
    let cap = T0 + max.as_millis() as u64;
    r.report(&Report::new("a2", Outcome::RateLimited).retry_after(Some(Duration::MAX)));
    let h = headers(&[("retry-after", "99999999999".into())]);
    r.report(&Report::new("a3", Outcome::RateLimited).headers(&h));
    assert_eq!((until("a2"), until("a3")), (cap, cap));
}

#[test]
fn seeded_routers_choose_alike_and_plans_are_bounded() {
    let c = pool(50);
    let (a, _) = router(42);
    let (b, _) = router(42);
    for _ in 0..200 {
        let (pa, pb) = (a.plan(&request(None), &c), b.plan(&request(None), &c));
        let ids = |p: &aicarpool_core::router::Plan| {
            p.candidates
                .iter()
                .map(|x| id(x).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&pa), ids(&pb));
        assert_eq!(pa.candidates.len(), 5, "max_candidates");
        let mut unique = ids(&pa);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "no account twice");
    }
}

#[test]
fn one_half_open_account_leads_its_tier_the_others_wait() {
    let (r, clock) = router(31);
    let c = pool(4);
    r.report(&Report::new("a0", Outcome::Overloaded));
    r.report(&Report::new("a1", Outcome::Overloaded));
    clock.advance(Duration::from_secs(30));
    for _ in 0..30 {
        let plan = r.plan(&request(None), &c);
        let ids: Vec<&str> = plan.candidates.iter().map(id).collect();
        assert!(ids[0] == "a0" || ids[0] == "a1", "a probe leads: {ids:?}");
        assert!(
            ids[1] == "a2" || ids[1] == "a3",
            "healthy accounts before a second probe: {ids:?}"
        );
    }
    // A conversation on a healthy account keeps it; no probe for it.
    let s = session("busy-conversation");
    r.report(&Report::new("a3", ok()).session(Some(s)));
    assert_eq!(first(&r, Some(s), &c), "a3");
}

fn at(ms: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap()).unwrap()
}

#[test]
fn a_cooling_seen_elsewhere_benches_the_account_without_counting_a_failure() {
    let (r, clock) = router(8);
    let c = pool(2);
    r.observe_cooling("a0", at(T0 + 60_000));
    let plan = r.plan(&request(None), &c);
    assert!(plan.candidates.iter().all(|x| id(x) != "a0"));
    assert_eq!(plan.held_back.rate_limited, 1);
    assert!(r.begin("a0").is_none());
    let health = r.health("a0").unwrap();
    assert_eq!(health.cooling_until_ms, Some(T0 + 60_000));
    assert_eq!(health.recent_outcomes, 0, "no failure of ours");
    assert_eq!(health.consecutive_cooldowns, 0, "no escalation");
    assert_eq!(
        health.last_error.unwrap().message,
        "rate limited (reported by another instance)"
    );

    // An earlier end leaves the later one; a later end extends it.
    r.observe_cooling("a0", at(T0 + 30_000));
    assert_eq!(r.health("a0").unwrap().cooling_until_ms, Some(T0 + 60_000));
    r.observe_cooling("a0", at(T0 + 90_000));
    assert_eq!(r.health("a0").unwrap().cooling_until_ms, Some(T0 + 90_000));
    // One that already ended changes nothing.
    r.observe_cooling("a1", at(T0 - 1));
    assert_eq!(r.state("a1"), HealthState::Healthy);

    // Then half-open as usual: one probe, and its success heals.
    clock.advance(Duration::from_secs(90));
    assert_eq!(r.state("a0"), HealthState::HalfOpen { probing: false });
    let probe = r.begin("a0").expect("the probe");
    assert!(probe.is_probe());
    assert!(r.begin("a0").is_none());
    r.report(&Report::new("a0", ok()));
    drop(probe);
    assert_eq!(r.state("a0"), HealthState::Healthy);
}

#[test]
fn a_cooling_seen_elsewhere_leaves_needs_attention_alone() {
    let (r, clock) = router(9);
    r.report(&Report::new(
        "a0",
        Outcome::CredentialsRejected {
            status: 401,
            reason: "invalid x-api-key".into(),
        },
    ));
    r.observe_cooling("a0", at(T0 + 60_000));
    assert_eq!(r.state("a0"), HealthState::NeedsAttention);
    clock.advance(Duration::from_secs(120));
    assert_eq!(r.state("a0"), HealthState::NeedsAttention);
}

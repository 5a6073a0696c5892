//! The SmartRouter against simulated accounts on a virtual clock.
//!
//! Five subscription-like accounts with 1-hour usage windows (staggered),
//! an overload episode, two outages, a demand surge that exhausts every
//! window, latency that keeps requests in flight, and Claude Code-like
//! sessions that come and go. The gateway's failover loop is mirrored
//! (plan → lease → begin → answer → report, at most 3 attempts), so what is
//! measured is what members would see. Figures are printed (`--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod router_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::account::Protocol;
use aicarpool_core::router::session::{SessionId, SessionSource};
use aicarpool_core::router::{
    Candidate, Clock, HealthState, InFlightLease, Outcome, Report, RouteRequest, Router,
    SessionKey, SmartRouter, SmartRouterConfig, Tally, Verdict, VirtualClock,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use router_support::{candidate, unified, T0};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const MAX_ATTEMPTS: usize = 3;

/// What a simulated account does at a given time.
struct SimAccount {
    id: String,
    /// Windows are `[T0 + offset + k·WINDOW, …)`.
    offset: u64,
    capacity: u32,
    used: HashMap<u64, u32>,
    /// `(from, to, probability of a 529)`.
    overloads: Vec<(u64, u64, f64)>,
    /// `(from, to)`: connections refused.
    outages: Vec<(u64, u64)>,
    successes: Vec<u64>,
    /// When a bad spell ends: window resets after a 429, outage ends.
    recoveries: Vec<u64>,
}

enum Answer {
    Ok(http::HeaderMap),
    RateLimited(http::HeaderMap, u64),
    Overloaded,
    Down,
}

const WINDOW: u64 = HOUR;

impl SimAccount {
    fn new(i: usize, capacity: u32) -> Self {
        Self {
            id: format!("acct-{i}"),
            offset: i as u64 * 12 * MIN,
            capacity,
            used: HashMap::new(),
            overloads: vec![],
            outages: vec![],
            successes: vec![],
            recoveries: vec![],
        }
    }

    /// The window at `t`: its index and end (epoch ms, whole seconds).
    fn window(&self, t: u64) -> (u64, u64) {
        let k = (t - T0 + WINDOW - self.offset) / WINDOW;
        (k, T0 + self.offset + k * WINDOW)
    }

    fn in_outage(&self, t: u64) -> Option<u64> {
        self.outages
            .iter()
            .find(|(a, b)| (*a..*b).contains(&t))
            .map(|o| o.1)
    }

    fn overload_p(&self, t: u64) -> f64 {
        self.overloads
            .iter()
            .find(|(a, b, _)| (*a..*b).contains(&t))
            .map_or(0.0, |o| o.2)
    }

    /// Would a request succeed now (overload episodes count as unhealthy)?
    fn healthy(&self, t: u64) -> bool {
        let (k, _) = self.window(t);
        self.in_outage(t).is_none()
            && self.overload_p(t) == 0.0
            && self.used.get(&k).copied().unwrap_or(0) < self.capacity
    }

    fn answer(&mut self, t: u64, rng: &mut SmallRng) -> Answer {
        if let Some(end) = self.in_outage(t) {
            self.recoveries.push(end);
            return Answer::Down;
        }
        let p = self.overload_p(t);
        if p > 0.0 && rng.gen_bool(p) {
            return Answer::Overloaded;
        }
        let (k, end) = self.window(t);
        let used = self.used.entry(k).or_insert(0);
        if *used >= self.capacity {
            self.recoveries.push(end);
            return Answer::RateLimited(unified("rejected", end / 1000, 1.0), end);
        }
        *used += 1;
        let share = f64::from(*used) / f64::from(self.capacity);
        let status = if share >= 0.8 {
            "allowed_warning"
        } else {
            "allowed"
        };
        self.successes.push(t);
        Answer::Ok(unified(status, end / 1000, share))
    }
}

#[derive(Default, Debug)]
struct Figures {
    requests: u64,
    attempts: u64,
    served: u64,
    client_failures: u64,
    failures_while_a_healthy_account_was_eligible: u64,
    requests_to_cooling: u64,
    sticky_opportunities: u64,
    sticky_hits: u64,
    rate_limited_answers: u64,
    overloaded_answers: u64,
    unavailable_answers: u64,
    failures_in_surge: u64,
    retry_after_off: u64,
}

struct Session {
    key: SessionKey,
    turns_left: u32,
}

fn new_session(n: &mut u64, rng: &mut SmallRng) -> Session {
    *n += 1;
    let id = SessionId::from_id(SessionSource::Header, &format!("session-{n}"));
    Session {
        key: id.scoped(&format!("member-key-{}", *n % 7)),
        turns_left: rng.gen_range(10..80),
    }
}

fn smart(seed: u64) -> (SmartRouter, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new(T0));
    let config = SmartRouterConfig {
        seed: Some(seed),
        ..Default::default()
    };
    (SmartRouter::with_config(config, clock.clone()), clock)
}

fn eligible_now(router: &SmartRouter, c: &Candidate) -> bool {
    matches!(
        router.state(&c.account.account.id),
        HealthState::Healthy | HealthState::HalfOpen { probing: false }
    ) && !c.account.saturated()
}

#[test]
fn carpool_day_on_a_virtual_clock() {
    let (router, clock) = smart(2026);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut accounts: Vec<SimAccount> = (0..5).map(|i| SimAccount::new(i, 1100)).collect();
    accounts[1]
        .overloads
        .push((T0 + 70 * MIN, T0 + 90 * MIN, 0.6));
    accounts[3].outages.push((T0 + 130 * MIN, T0 + 160 * MIN));
    accounts[0].outages.push((T0 + 310 * MIN, T0 + 320 * MIN));
    let candidates: Vec<Candidate> = accounts
        .iter()
        .map(|a| candidate(&a.id, 10, 1, false, Some(40)))
        .collect();
    let index: HashMap<&str, usize> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();
    let index: HashMap<String, usize> = index.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();

    let end = T0 + 6 * HOUR;
    let surge = (T0 + 240 * MIN, T0 + 270 * MIN);
    let mut sessions_made = 0;
    let mut sessions: Vec<Session> = (0..60)
        .map(|_| new_session(&mut sessions_made, &mut rng))
        .collect();
    let mut bound: HashMap<SessionKey, usize> = HashMap::new();
    let mut in_flight: Vec<(u64, InFlightLease)> = Vec::new();
    let mut f = Figures::default();
    let mut t = T0;

    while t < end {
        let mean_gap = if (surge.0..surge.1).contains(&t) {
            150.0
        } else {
            1000.0
        };
        t += (-(1.0 - rng.gen::<f64>()).ln() * mean_gap) as u64 + 1;
        clock.set(t);
        in_flight.retain(|(until, _)| *until > t);

        let s = rng.gen_range(0..sessions.len());
        let key = sessions[s].key;
        let request = RouteRequest {
            session: Some(key),
            max_candidates: MAX_ATTEMPTS + 2,
            ..RouteRequest::new("g", "member", Protocol::Anthropic, "claude-sonnet-4-5")
        };
        let prior = bound.get(&key).copied();
        let opportunity = prior.is_some_and(|a| {
            router.state(&accounts[a].id) == HealthState::Healthy
                && !candidates[a].account.saturated()
                && accounts[a].healthy(t)
        });
        let plan = router.plan(&request, &candidates);
        let mut tally = Tally::from_held_back(&plan.held_back);
        let mut attempts = 0;
        let mut served = None;
        f.requests += 1;
        for c in &plan.candidates {
            if attempts >= MAX_ATTEMPTS {
                break;
            }
            let id = c.account.account.id.as_str();
            let Some(lease) = c.account.try_lease() else {
                tally.busy();
                continue;
            };
            let Some(permit) = router.begin(id) else {
                tally.busy();
                continue;
            };
            attempts += 1;
            f.attempts += 1;
            if matches!(
                router.state(id),
                HealthState::Cooling { .. } | HealthState::NeedsAttention
            ) {
                f.requests_to_cooling += 1;
            }
            let a = index[id];
            let outcome = match accounts[a].answer(t, &mut rng) {
                Answer::Ok(h) => {
                    let latency = rng.gen_range(2_000..30_000);
                    let ok = Outcome::Success {
                        latency: Duration::from_millis(latency / 10),
                    };
                    router.report(&Report::new(id, ok).headers(&h).session(Some(key)));
                    in_flight.push((t + latency, lease));
                    served = Some(a);
                    break;
                }
                Answer::RateLimited(h, reset_ms) => {
                    router.report(&Report::new(id, Outcome::RateLimited).headers(&h));
                    tally.attempt(
                        &Outcome::RateLimited,
                        Some(Duration::from_millis(reset_ms - t)),
                    );
                    continue;
                }
                Answer::Overloaded => Outcome::Overloaded,
                Answer::Down => Outcome::Failed {
                    status: None,
                    reason: "connection refused".into(),
                },
            };
            tally.attempt(&outcome, None);
            router.report(&Report::new(id, outcome));
            drop(permit);
        }
        if opportunity {
            f.sticky_opportunities += 1;
            f.sticky_hits += u64::from(served == prior);
        }
        match served {
            Some(a) => {
                f.served += 1;
                bound.insert(key, a);
            }
            None => {
                f.client_failures += 1;
                let healthy_eligible = candidates
                    .iter()
                    .zip(&accounts)
                    .any(|(c, a)| eligible_now(&router, c) && a.healthy(t));
                if healthy_eligible {
                    f.failures_while_a_healthy_account_was_eligible += 1;
                    eprintln!(
                        "failure at +{} s with a healthy account eligible",
                        (t - T0) / 1000
                    );
                }
                f.failures_in_surge += u64::from((surge.0..surge.1 + HOUR).contains(&t));
                let verdict = tally.verdict();
                match verdict {
                    Some(Verdict::Overloaded) => f.overloaded_answers += 1,
                    Some(Verdict::RateLimited { .. }) => {}
                    _ => f.unavailable_answers += 1,
                }
                if let Some(Verdict::RateLimited { retry_after }) = verdict {
                    f.rate_limited_answers += 1;
                    // Every window is spent: come back when the first resets.
                    let soonest = accounts.iter().map(|a| a.window(t).1).min().unwrap() - t;
                    let told = retry_after.map(|d| d.as_millis() as u64);
                    if told.is_none_or(|ms| ms.abs_diff(soonest) > 1_000) {
                        f.retry_after_off += 1;
                    }
                }
            }
        }
        sessions[s].turns_left -= 1;
        if sessions[s].turns_left == 0 {
            sessions[s] = new_session(&mut sessions_made, &mut rng);
        }
    }

    // Recovery without an admin: after every bad spell the account served
    // again within 7 minutes: the longest cooling (5 min) and the wait for a
    // request that is not another account's sticky turn (spells ending in
    // the last 10 minutes aside).
    let mut recoveries = 0;
    let mut slowest = 0;
    for a in &mut accounts {
        a.recoveries.sort_unstable();
        a.recoveries.dedup();
        for &e in a.recoveries.iter().filter(|e| **e + 10 * MIN < end) {
            let first = a.successes.iter().find(|s| **s >= e).copied();
            let delay = first.map_or(u64::MAX, |s| s - e);
            assert!(
                delay <= 7 * MIN,
                "{} did not come back after +{} s",
                a.id,
                (e - T0) / 1000
            );
            recoveries += 1;
            slowest = slowest.max(delay);
        }
    }
    for a in &accounts {
        assert_ne!(router.state(&a.id), HealthState::NeedsAttention);
    }

    let stats = router.stats();
    let hit_rate = f.sticky_hits as f64 / f.sticky_opportunities.max(1) as f64;
    println!("simulation: {f:#?}");
    println!(
        "simulation: sticky hit rate {:.2}% ({} of {}), sessions moved {}, probes {}, \
         refused at attempt time {}, client-visible failures {} (all while no healthy account \
         was eligible: {}), requests sent to cooling accounts {}, recoveries {recoveries} \
         (slowest {} s)",
        hit_rate * 100.0,
        f.sticky_hits,
        f.sticky_opportunities,
        stats.sticky_moves,
        stats.probes,
        stats.refused,
        f.client_failures,
        f.failures_while_a_healthy_account_was_eligible == 0,
        f.requests_to_cooling,
        slowest / 1000,
    );
    assert!(
        f.requests >= 20_000,
        "thousands of requests: {}",
        f.requests
    );
    assert_eq!(
        f.requests_to_cooling, 0,
        "no request to an account in Cooling"
    );
    assert_eq!(
        f.failures_while_a_healthy_account_was_eligible, 0,
        "no client-visible failure while an eligible account is healthy"
    );
    assert!(hit_rate >= 0.95, "sticky hit rate {hit_rate}");
    assert!(f.client_failures > 0, "the surge must exhaust every window");
    assert!(f.rate_limited_answers > 0);
    assert_eq!(f.retry_after_off, 0, "429s carry the soonest recovery");
    assert!(recoveries >= 5, "{recoveries}");
    assert!(stats.sticky_moves > 0 && stats.probes > 0);
}

/// Runs `requests` through one tier of the given weights; returns each
/// account's share of the requests served.
fn shares(weights: &[u32], requests: u64, concurrent: bool, seed: u64) -> Vec<f64> {
    let (router, clock) = smart(seed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let candidates: Vec<Candidate> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| candidate(&format!("w{i}"), 10, *w, false, None))
        .collect();
    let mut served = vec![0u64; weights.len()];
    let mut in_flight: Vec<(u64, InFlightLease)> = Vec::new();
    let mut t = T0;
    for _ in 0..requests {
        t += 50;
        clock.set(t);
        in_flight.retain(|(until, _)| *until > t);
        let request = RouteRequest::new("g", "k", Protocol::Anthropic, "m");
        let plan = router.plan(&request, &candidates);
        let c = &plan.candidates[0];
        let i = candidates
            .iter()
            .position(|x| x.account.account.id == c.account.account.id)
            .unwrap();
        served[i] += 1;
        let lease = c.account.try_lease().unwrap();
        if concurrent {
            in_flight.push((t + rng.gen_range(500..3_500), lease));
        }
        router.report(&Report::new(
            &c.account.account.id,
            Outcome::Success {
                latency: Duration::from_millis(100),
            },
        ));
    }
    assert!(clock.now_ms() > T0);
    served.iter().map(|s| *s as f64 / requests as f64).collect()
}

#[test]
fn weights_are_respected_within_ten_percent_over_10k_requests() {
    let weights = [1u32, 2, 3, 4];
    let total: u32 = weights.iter().sum();
    for concurrent in [false, true] {
        let got = shares(&weights, 10_000, concurrent, 99);
        let mut worst: f64 = 0.0;
        for (w, share) in weights.iter().zip(&got) {
            let want = f64::from(*w) / f64::from(total);
            let err = (share - want).abs() / want;
            worst = worst.max(err);
            assert!(err <= 0.10, "weight {w}: share {share:.3}, want {want:.3}");
        }
        println!(
            "weights {weights:?} ({}): shares {:?}, worst relative error {:.2}%",
            if concurrent {
                "~40 in flight"
            } else {
                "sequential"
            },
            got.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>(),
            worst * 100.0
        );
    }
}

//! The fair share of a subscription window, simulated over 10 hours on a
//! virtual clock, through the real gateway and HTTP.
//!
//! One Claude subscription ($24 of list-price use per 5-hour window)
//! behind a mock that fills its windows with the cost it serves, answers
//! with the unified rate-limit headers, and refuses with 429 at 100 %
//! until the reset. One heavy member runs Claude Code-like sessions
//! without pause (a request every 10 s); four light members send about
//! three requests an hour. Every request costs $0.075 at list price.
//!
//! Run with `--nocapture` to see the figures: light members' refusals
//! with and without the fair share, each window's use, what the heavy
//! member got of what the light ones left, and Jain's fairness index
//! over the members' demand-normalised service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/carpool.rs"]
mod carpool;

use std::sync::Arc;

use aicarpool_core::account::Platform;
use aicarpool_core::carpool::FairShare;
use aicarpool_core::gateway::{Gateway, REFUSAL_HEADER};
use aicarpool_core::id::new_id;
use aicarpool_core::org::{GroupRole, Membership, User};
use aicarpool_core::router::{Clock, SmartRouter, SmartRouterConfig, VirtualClock};
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::{AccountStore, GroupStore, KeyStore, MemoryStore, UserStore};
use aicarpool_testkit::subscription::{SubscriptionMock, SubscriptionPlan};
use bytes::Bytes;

use http_body_util::BodyExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
/// 2027-01-15T08:00:00Z.
const T0: u64 = 1_800_000_000_000;
const RUN: u64 = 10 * HOUR;
const HEAVY_EVERY: u64 = 10_000;
const LIGHT_PER_HOUR: u64 = 3;
const UPSTREAM_KEY: &str = "sk-ant-sub";
/// Bytes of prompt: 20,000 input tokens at the mock's four bytes a token.
const PROMPT_BYTES: usize = 80_000;
const MAX_TOKENS: u64 = 1_000;
/// $3 and $15 per million tokens: Sonnet 4.5's list price.
const PLAN: SubscriptionPlan = SubscriptionPlan {
    five_hour_micro_usd: 24_000_000,
    seven_day_micro_usd: 400_000_000,
    input_per_mtok: 3_000_000,
    output_per_mtok: 15_000_000,
};

#[derive(Debug, Default, Clone)]
struct Member {
    key: String,
    heavy: bool,
    weight: u32,
    sent: u32,
    served: u32,
    refused: u32,
    fair_share_refusals: u32,
}

struct Outcome {
    members: Vec<Member>,
    windows: Vec<aicarpool_testkit::subscription::ServedWindow>,
    request_cost: f64,
}

/// Runs the 10 hours with five members: `(share weight, heavy)`.
async fn run(fair_share: FairShare, members_spec: [(u32, bool); 5]) -> Outcome {
    let clock = Arc::new(VirtualClock::new(T0));
    let mock_clock = clock.clone();
    let mock = SubscriptionMock::start(UPSTREAM_KEY, PLAN, Arc::new(move || mock_clock.now_ms()))
        .await
        .unwrap();

    let store = Arc::new(MemoryStore::new());
    let sealer = Sealer::new(&MasterKey::generate());
    let (owner, mut group) = carpool::owner_and_group(&store, Default::default()).await;
    group.fair_share = fair_share;
    store.update_group(&group).await.unwrap();
    let mut account = carpool::group_account(
        &sealer,
        &group.id,
        Platform::ClaudeApi,
        &mock.url,
        &carpool::api_key(UPSTREAM_KEY),
    );
    account.name = "Claude Max of the owner".into();
    store.create_account(&account).await.unwrap();
    carpool::bind_dedicated(&store, &group.id, std::slice::from_ref(&account.id)).await;

    let mut members = Vec::new();
    for (i, (weight, heavy)) in members_spec.into_iter().enumerate() {
        let user_id = if i == 0 {
            owner.id.clone()
        } else {
            let user = User {
                id: new_id(),
                email: format!("light{i}@example.com"),
                name: format!("light {i}"),
                password_hash: String::new(),
                is_system_admin: false,
                created_at: chrono::Utc::now(),
            };
            store.create_user(&user).await.unwrap();
            store
                .add_member(
                    &Membership {
                        group_id: group.id.clone(),
                        user_id: user.id.clone(),
                        role: GroupRole::Member,
                        share_weight: 1,
                        joined_at: chrono::Utc::now(),
                    },
                    None,
                )
                .await
                .unwrap();
            user.id
        };
        let mut membership = store
            .membership(&group.id, &user_id)
            .await
            .unwrap()
            .unwrap();
        membership.share_weight = weight;
        store.update_member(&membership).await.unwrap();
        let (key, record) = carpool::member_key(&group.id, &user_id, "cli", Default::default());
        store.create_key(&record).await.unwrap();
        members.push(Member {
            key,
            heavy,
            weight,
            ..Default::default()
        });
    }

    let router = SmartRouter::with_config(SmartRouterConfig::default(), clock.clone());
    let gateway = Gateway::builder(store.clone(), sealer)
        .outbound_guard(aicarpool_core::outbound::OutboundGuard::parse("127.0.0.0/8").unwrap())
        .config(carpool::gateway_config())
        .router(Arc::new(router))
        .clock(clock.clone())
        .build();

    // Who sends when: the heavy member every 20 s, each light member
    // about twice an hour at random moments (the same in every run).
    let mut events = Vec::new();
    let mut rng = SmallRng::seed_from_u64(11);
    for (m, member) in members.iter().enumerate() {
        if member.heavy {
            let start = rng.gen_range(0..HEAVY_EVERY);
            events.extend((0..RUN / HEAVY_EVERY).map(|k| (T0 + start + k * HEAVY_EVERY, m)));
            continue;
        }
        let gap = HOUR / LIGHT_PER_HOUR;
        let mut t = T0 + rng.gen_range(0..gap);
        while t < T0 + RUN {
            events.push((t, m));
            t += rng.gen_range(gap / 2..gap * 3 / 2);
        }
    }
    events.sort();

    let body = serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "x".repeat(PROMPT_BYTES - 100)}],
    })
    .to_string();
    for (t, m) in events {
        clock.set(t);
        let req = http::Request::post("/v1/messages")
            .header("x-api-key", &members[m].key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.clone())))
            .unwrap();
        let resp = gateway.serve(req).await;
        let status = resp.status();
        let fair = resp
            .headers()
            .get(REFUSAL_HEADER)
            .is_some_and(|v| v == "fair-share");
        let _ = resp.into_body().collect().await;
        let member = &mut members[m];
        member.sent += 1;
        if status.is_success() {
            member.served += 1;
        } else {
            assert_eq!(status, 429, "only refusals, never errors");
            member.refused += 1;
            member.fair_share_refusals += u32::from(fair);
        }
    }
    gateway.shutdown().await;
    let request_cost = (PROMPT_BYTES as f64 / 4.0 * 3.0 + MAX_TOKENS as f64 * 15.0) / 1e6;
    Outcome {
        members,
        windows: mock.five_hour_windows(),
        request_cost,
    }
}

/// Jain's index of `x`: 1 when all are equal, 1/n when one has it all.
fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    sum * sum / (x.len() as f64 * squares)
}

struct Figures {
    light_sent: u32,
    light_refused: u32,
    heavy_served_usd: f64,
    left_by_light_usd: f64,
    jain_demand: f64,
    jain_fair: f64,
}

fn report(name: &str, o: &Outcome) -> Figures {
    let light: Vec<&Member> = o.members.iter().filter(|m| !m.heavy).collect();
    let heavy: Vec<&Member> = o.members.iter().filter(|m| m.heavy).collect();
    let cost = o.request_cost;
    let capacity: f64 = o
        .windows
        .iter()
        .map(|w| w.capacity_micro_usd as f64 / 1e6)
        .sum();
    let light_served_usd: f64 = light.iter().map(|m| f64::from(m.served) * cost).sum();
    let light_demand_usd: f64 = light.iter().map(|m| f64::from(m.sent) * cost).sum();
    // Service over demand; and over the max-min fair allocation (light
    // members' whole demand, the heavy member the rest).
    let demand_normalised: Vec<f64> = o
        .members
        .iter()
        .map(|m| f64::from(m.served) / f64::from(m.sent.max(1)))
        .collect();
    let fair_normalised: Vec<f64> = o
        .members
        .iter()
        .map(|m| {
            let served = f64::from(m.served) * cost;
            let fair = if m.heavy {
                (capacity - light_demand_usd) * f64::from(m.weight)
                    / heavy.iter().map(|h| f64::from(h.weight)).sum::<f64>()
            } else {
                f64::from(m.sent) * cost
            };
            (served / fair).min(1.0)
        })
        .collect();
    let f = Figures {
        light_sent: light.iter().map(|m| m.sent).sum(),
        light_refused: light.iter().map(|m| m.refused).sum(),
        heavy_served_usd: heavy.iter().map(|h| f64::from(h.served) * cost).sum(),
        left_by_light_usd: capacity - light_served_usd,
        jain_demand: jain(&demand_normalised),
        jain_fair: jain(&fair_normalised),
    };
    println!("── {name}");
    for (i, w) in o.windows.iter().enumerate() {
        println!(
            "   window {i}: from +{:.2} h, used {:.1} % of ${:.2}",
            (w.started_ms - T0) as f64 / HOUR as f64,
            100.0 * w.utilization(),
            w.capacity_micro_usd as f64 / 1e6
        );
    }
    println!(
        "   light members: {} sent, {} refused ({:.1} %)",
        f.light_sent,
        f.light_refused,
        100.0 * f64::from(f.light_refused) / f64::from(f.light_sent)
    );
    for h in &heavy {
        println!(
            "   heavy member (weight {}): {} sent, {} served (${:.2}), {} refused ({} for fair share)",
            h.weight,
            h.sent,
            h.served,
            f64::from(h.served) * cost,
            h.refused,
            h.fair_share_refusals
        );
    }
    println!(
        "   heavy members got ${:.2} of the ${:.2} the light members left ({:.1} %)",
        f.heavy_served_usd,
        f.left_by_light_usd,
        100.0 * f.heavy_served_usd / f.left_by_light_usd
    );
    println!(
        "   Jain's index: {:.3} over demand-normalised service, {:.3} over service / max-min fair allocation",
        f.jain_demand, f.jain_fair
    );
    f
}

fn assert_fair(f: &Figures, o: &Outcome) {
    assert_eq!(f.light_refused, 0, "no light member is ever refused");
    for w in &o.windows {
        // The heavy member has demand through every window.
        assert!(
            w.utilization() >= 0.95,
            "a window used {:.3} of its capacity",
            w.utilization()
        );
    }
    assert!(
        f.heavy_served_usd >= 0.95 * f.left_by_light_usd,
        "the heavy member gets what the light ones leave"
    );
}

const ONE_HEAVY: [(u32, bool); 5] = [(1, true), (1, false), (1, false), (1, false), (1, false)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_member_cannot_drain_the_window_for_the_others() {
    let off = FairShare {
        enabled: false,
        engage_at: 0.6,
    };
    let run_off = run(off, ONE_HEAVY).await;
    let without = report("without fair share", &run_off);
    assert!(
        without.light_refused * 2 > without.light_sent,
        "without the fair share most light requests meet a drained window"
    );

    let on = run(FairShare::default(), ONE_HEAVY).await;
    let with = report("with fair share (engageAt 0.6, weights 1:1:1:1:1)", &on);
    assert_fair(&with, &on);
    assert!(with.jain_fair > without.jain_fair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_what_the_light_members_leave() {
    // The heavy member weighs 2: light members are within their share
    // either way, so the split is the same as with equal weights.
    let mut spec = ONE_HEAVY;
    spec[0].0 = 2;
    let weighted = run(FairShare::default(), spec).await;
    let w = report(
        "with fair share, weights 2:1:1:1:1 (the heavy member 2)",
        &weighted,
    );
    assert_fair(&w, &weighted);

    // Two heavy members, weights 2:1: what the light ones leave is split
    // two to one.
    let spec = [(2, true), (1, true), (1, false), (1, false), (1, false)];
    let two = run(FairShare::default(), spec).await;
    let f = report(
        "with fair share, two heavy members weighing 2:1:1:1:1",
        &two,
    );
    assert_fair(&f, &two);
    let served = |i: usize| f64::from(two.members[i].served);
    let ratio = served(0) / served(1);
    println!("   heavy members served {:.2} : 1", ratio);
    assert!(
        (1.7..=2.3).contains(&ratio),
        "weight 2 gets about twice: {ratio}"
    );
}

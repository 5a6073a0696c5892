//! What one request costs through the gateway, next to the same request
//! sent straight to the same mock upstream in the same run.
//!
//! - `gateway/small_json/{direct,gateway}`: a small non-streaming Messages
//!   request, the whole JSON answer read;
//! - `gateway/claude_code_76k_stream/{direct,gateway}`: the captured ~76 KB
//!   Claude Code request, its SSE answer read to the last event;
//! - `router/plan_100_accounts`: one `PriorityRouter::plan` over 100
//!   candidates of mixed platforms, models and priorities.
//!
//! `direct` is a `reqwest` client calling the mock. `gateway` calls
//! `Gateway::handle` in process (no client-side HTTP hop), and the gateway
//! makes the same kind of call to the mock; so `gateway − direct` is the
//! gateway's own work: authentication, admission, routing, header rewrite,
//! the stream pump and usage settlement.
//!
//! The streaming case opens a new upstream connection per request on both
//! sides (see `aicarpool_benches::unpooled_client`): the mock leaves Nagle
//! on, and on a kept-alive connection every streamed answer would wait
//! ~40 ms for a delayed ACK, burying the gateway's cost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aicarpool_benches::{unpooled_client, Fixture, Replay, MODEL, UPSTREAM_KEY};
use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform, Protocol};
use aicarpool_core::gateway::Gateway;
use aicarpool_core::router::{Candidate, PriorityRouter, RoutableAccount, RouteRequest, Router};
use aicarpool_core::secret::Sealed;
use aicarpool_testkit::MockUpstream;
use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use http_body_util::BodyExt;

/// Sends `body` straight to the mock and reads the answer to its end.
async fn direct(client: &reqwest::Client, url: &str, headers: &HeaderMap, body: &bytes::Bytes) {
    let mut resp = client
        .post(url)
        .headers(headers.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "direct: {}", resp.status());
    let mut read = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        read += chunk.len();
    }
    black_box(read);
}

/// Serves `replay` through the gateway and reads the answer to its end.
async fn through_gateway(gateway: &Gateway, replay: &Replay, headers: &HeaderMap) {
    let resp = gateway.handle(replay.gateway_request(headers)).await;
    assert!(resp.status().is_success(), "gateway: {}", resp.status());
    let mut body = resp.into_body();
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            read += data.len();
        }
    }
    black_box(read);
}

/// Times `iters` requests through a gateway built for this sample alone.
///
/// `MemoryStore` checks each usage record against every one it holds, so
/// one store kept over a whole benchmark would make later samples pay for
/// the records of earlier ones; a fresh gateway per sample keeps that cost
/// flat and out of the figures.
async fn gateway_sample(mock_url: &str, fresh: bool, replay: &Replay, iters: u64) -> Duration {
    let http = fresh.then(unpooled_client);
    let fixture = Fixture::with_upstream_client(mock_url, http).await.unwrap();
    let headers = replay.member_headers(&fixture.member_key);
    // A running gateway has its key and route caches filled and its
    // upstream connection open; so does this one before timing starts.
    through_gateway(&fixture.gateway, replay, &headers).await;
    let started = Instant::now();
    for _ in 0..iters {
        through_gateway(&fixture.gateway, replay, &headers).await;
    }
    let elapsed = started.elapsed();
    fixture.gateway.shutdown().await;
    elapsed
}

fn gateway_benches(c: &mut Criterion) {
    // Two workers, as on the 2-core budget machine: they run the mock and
    // the gateway's stream pumps; criterion drives requests from its own
    // thread for both variants alike.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mock = rt.block_on(MockUpstream::start(UPSTREAM_KEY)).unwrap();

    // The mock keeps every request it receives, so the 76 KB case grows
    // the process by ~76 KB per iteration; keep measurement times short.
    for (name, replay, fresh) in [
        ("gateway/small_json", Replay::small(false), false),
        (
            "gateway/claude_code_76k_stream",
            Replay::claude_code(),
            true,
        ),
    ] {
        // Nagle off, pooled or not, like the gateway's own upstream client.
        let client = if fresh {
            unpooled_client()
        } else {
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .unwrap()
        };
        let url = format!("{}{}", mock.url, replay.path);
        let upstream = replay.upstream_headers();
        // Both paths must succeed before their timings mean anything.
        rt.block_on(direct(&client, &url, &upstream, &replay.body));
        rt.block_on(gateway_sample(&mock.url, fresh, &replay, 1));

        let mut group = c.benchmark_group(name);
        if fresh {
            // Each iteration is a few milliseconds: fewer, longer samples
            // keep the run inside the measurement time.
            group.sample_size(30);
        }
        group.bench_function("direct", |b| {
            b.to_async(&rt)
                .iter(|| direct(&client, &url, &upstream, &replay.body));
        });
        group.bench_function("gateway", |b| {
            b.to_async(&rt)
                .iter_custom(|iters| gateway_sample(&mock.url, fresh, &replay, iters));
        });
        group.finish();
    }
}

/// 100 accounts as a large pool might hold them: mostly Anthropic, some of
/// other protocols, five disabled, model lists and globs, the first fifth dedicated.
fn candidates() -> Vec<Candidate> {
    let now = chrono::Utc::now();
    (0..100)
        .map(|i: usize| {
            let platform = match i % 10 {
                0 => Platform::Gemini,
                1 => Platform::OpenaiCompatible,
                2 | 3 => Platform::AnthropicCompatible,
                _ => Platform::ClaudeApi,
            };
            let models: Vec<String> = match i % 4 {
                0 => vec![],
                1 => vec!["claude-sonnet-*".into()],
                2 => vec!["claude-opus-*".into(), "claude-haiku-*".into()],
                _ => vec![MODEL.into(), "claude-opus-4-1".into()],
            };
            let priority = (i * 37 % 50) as i32;
            let account = Account {
                id: format!("acc-{i:03}"),
                name: format!("account {i}"),
                platform,
                preset: None,
                base_url: Some(format!("https://relay-{i}.example.com")),
                owner: AccountOwner::Group("g".into()),
                models,
                model_map: Default::default(),
                serves: Vec::new(),
                priority,
                weight: 1,
                max_concurrency: Some(8),
                proxy: None,
                enabled: !matches!(i, 17 | 34 | 51 | 68 | 85),
                credentials: Sealed::default(),
                created_at: now,
                updated_at: now,
            };
            Candidate {
                account: Arc::new(RoutableAccount {
                    base_url: account.base_url.clone().unwrap_or_default(),
                    account,
                    credentials: Credentials {
                        api_key: Some(format!("sk-ant-{i}")),
                        ..Default::default()
                    },
                    in_flight: Default::default(),
                }),
                priority,
                weight: 1,
                dedicated: i < 20,
            }
        })
        .collect()
}

fn router_benches(c: &mut Criterion) {
    let candidates = candidates();
    let request = RouteRequest::new("g", "k", Protocol::Anthropic, MODEL);
    let plan = PriorityRouter.plan(&request, &candidates).candidates;
    assert!(!plan.is_empty() && plan.len() < candidates.len());

    let mut group = c.benchmark_group("router");
    group.bench_function("plan_100_accounts", |b| {
        b.iter(|| PriorityRouter.plan(black_box(&request), black_box(&candidates)));
    });
    group.finish();
}

criterion_group!(benches, router_benches, gateway_benches);
criterion_main!(benches);

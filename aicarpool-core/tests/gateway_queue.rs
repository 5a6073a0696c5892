//! Waiting instead of refusing (`limits.queue`): requests that find every
//! concurrency slot taken wait in line, streams kept alive by pings, and
//! are refused only when the line is full or the wait runs out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/carpool.rs"]
mod carpool;
#[path = "common/harness.rs"]
mod harness;

use harness::*;

use std::time::{Duration, Instant};

use aicarpool_core::gateway::GatewayConfig;
use aicarpool_core::limits::{KeyLimits, QueueLimits};
use aicarpool_core::store::KeyStore;
use aicarpool_testkit::{Behavior, MockUpstream};
use futures::future::join_all;
use serde_json::json;

fn config() -> GatewayConfig {
    GatewayConfig {
        queue_ping_interval: Duration::from_millis(40),
        ..carpool::gateway_config()
    }
}

/// A harness whose key allows `concurrency` requests at once and lets
/// `queue` more wait.
async fn limited(
    accounts: Vec<AccountSpec>,
    concurrency: u32,
    queue: Option<QueueLimits>,
) -> Harness {
    let mut h = harness_with(accounts, None, config()).await;
    h.key_record.limits = KeyLimits {
        concurrency,
        queue,
        ..KeyLimits::default()
    };
    h.store.update_key(&h.key_record).await.unwrap();
    h
}

fn queue(max_waiting: u32, max_wait_ms: u64) -> Option<QueueLimits> {
    Some(QueueLimits {
        max_waiting,
        max_wait_ms,
    })
}

fn body(stream: bool) -> serde_json::Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

async fn answer(h: &Harness, stream: bool) -> (u16, Option<String>, String) {
    let resp = h.gateway.handle(h.json_request(body(stream))).await;
    let status = resp.status().as_u16();
    let refusal = resp
        .headers()
        .get("x-aicarpool-refusal")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = tokio::time::timeout(Duration::from_secs(30), body_text(resp.into_body()))
        .await
        .expect("the answer ends");
    (status, refusal, text)
}

/// Each stream of the mock takes about this long (its events are paced).
const PACE: Duration = Duration::from_millis(15);

#[tokio::test]
async fn twenty_parallel_streams_on_a_concurrency_of_two_all_succeed_in_turn() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push(std::iter::repeat_n(Behavior::Slow(PACE), 20));
    let h = limited(vec![api_account(&mock.url)], 2, queue(20, 20_000)).await;
    let started = Instant::now();
    let answers = join_all((0..20).map(|_| answer(&h, true))).await;
    let took = started.elapsed();
    let mut pinged = 0;
    for (status, _, text) in &answers {
        assert_eq!(*status, 200, "{text}");
        assert!(text.contains("message_stop"), "a whole stream: {text}");
        assert!(!text.contains("event: error"), "{text}");
        pinged += usize::from(text.starts_with("event: ping"));
    }
    assert!(pinged > 0, "waiting streams were kept alive with pings");
    // Two at a time: ten rounds of one stream's length at least.
    let one_stream = took / 20;
    assert!(
        took >= PACE * 10,
        "{took:?} for 20 at two at a time ({one_stream:?} each)"
    );
    assert_eq!(mock.hits(), 20);
    let records = h.records().await;
    assert_eq!(records.len(), 20);
    assert!(records
        .iter()
        .all(|r| r.status == 200 && r.refusal.is_none()));
}

#[tokio::test]
async fn without_a_queue_the_same_load_is_refused_at_once() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push(std::iter::repeat_n(Behavior::Slow(PACE), 20));
    let h = limited(vec![api_account(&mock.url)], 2, None).await;
    let answers = join_all((0..20).map(|_| answer(&h, true))).await;
    let refused = answers
        .iter()
        .filter(|(status, refusal, _)| *status == 429 && refusal.as_deref() == Some("concurrency"))
        .count();
    assert!(refused >= 10, "{refused} of 20 refused");
}

#[tokio::test]
async fn a_whole_answer_waits_for_the_slot_a_stream_holds() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::Gated]);
    let h = limited(vec![api_account(&mock.url)], 1, queue(5, 10_000)).await;
    let held = h.gateway.handle(h.json_request(body(true))).await;
    assert_eq!(held.status(), 200);
    let waiting = tokio::spawn({
        let gateway = h.gateway.clone();
        let request = h.json_request(body(false));
        async move {
            let resp = gateway.handle(request).await;
            (resp.status().as_u16(), body_text(resp.into_body()).await)
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "it waits while the slot is held");
    mock.release();
    assert!(body_text(held.into_body()).await.contains("message_stop"));
    let (status, text) = waiting.await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("end_turn"), "{text}");
}

#[tokio::test]
async fn a_full_line_refuses_at_once_and_a_long_wait_is_refused_at_its_bound() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::Gated]);
    let h = limited(vec![api_account(&mock.url)], 1, queue(1, 300)).await;
    let held = h.gateway.handle(h.json_request(body(true))).await;
    let first = tokio::spawn({
        let gateway = h.gateway.clone();
        let request = h.json_request(body(false));
        async move {
            let started = Instant::now();
            let resp = gateway.handle(request).await;
            let status = resp.status().as_u16();
            (status, body_text(resp.into_body()).await, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    let started = Instant::now();
    let (status, refusal, text) = answer(&h, false).await;
    assert_eq!(
        (status, refusal.as_deref()),
        (429, Some("concurrency")),
        "{text}"
    );
    assert!(text.contains("already waiting"), "{text}");
    assert!(started.elapsed() < Duration::from_millis(200), "at once");

    let (status, text, waited) = first.await.unwrap();
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("no slot came free"), "{text}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");

    // A stream that waits out its bound gets its head, pings, then the
    // error event in its own protocol.
    let (status, _, text) = answer(&h, true).await;
    assert_eq!(status, 200);
    assert!(text.contains("event: ping"), "{text}");
    assert!(text.contains("rate_limit_error"), "{text}");
    mock.release();
    drop(held);
    let records = h.records().await;
    let refused = records
        .iter()
        .filter(|r| r.status == 429 && r.refusal.is_some())
        .count();
    assert_eq!(refused, 3, "every refusal is recorded");
}

#[tokio::test]
async fn a_request_waits_for_a_busy_account_when_its_limits_allow() {
    for q in [None, queue(5, 10_000)] {
        // A mock each: a release leaves a permit for the next gated stream.
        let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
        mock.push([Behavior::Gated]);
        let one_at_a_time = AccountSpec {
            max_concurrency: Some(1),
            ..api_account(&mock.url)
        };
        let h = limited(vec![one_at_a_time], 0, q).await;
        let held = h.gateway.handle(h.json_request(body(true))).await;
        assert_eq!(held.status(), 200);
        let waiting = tokio::spawn({
            let gateway = h.gateway.clone();
            let request = h.json_request(body(false));
            async move { gateway.handle(request).await.status().as_u16() }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        if q.is_none() {
            assert_eq!(waiting.await.unwrap(), 529, "busy: refused at once");
            mock.release();
            continue;
        }
        if waiting.is_finished() {
            panic!("it waits for the account, got {}", waiting.await.unwrap());
        }
        mock.release();
        assert!(body_text(held.into_body()).await.contains("message_stop"));
        assert_eq!(waiting.await.unwrap(), 200);
    }
}

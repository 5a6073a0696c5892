use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{Full, StreamBody};

use super::*;

const KIB: usize = 1024;

fn with_length(n: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_LENGTH, n.into());
    h
}

fn full(n: usize) -> Full<Bytes> {
    Full::new(Bytes::from(vec![b'x'; n]))
}

/// A body of `chunks` chunks of `size` bytes with no declared length.
fn chunked(
    chunks: usize,
    size: usize,
) -> impl Body<Data = Bytes, Error = std::convert::Infallible> {
    let frames =
        (0..chunks).map(move |_| Ok(http_body::Frame::data(Bytes::from(vec![b'y'; size]))));
    StreamBody::new(tokio_stream::iter(frames))
}

#[tokio::test]
async fn a_body_holds_its_bytes_until_dropped() {
    let budget = BodyBudget::new(64 * KIB, 32 * KIB, Duration::from_millis(50));
    let (bytes, hold) = budget
        .read(&with_length(10 * KIB), full(10 * KIB))
        .await
        .unwrap();
    assert_eq!(bytes.len(), 10 * KIB);
    assert_eq!(budget.available(), 54 * KIB);
    drop(hold);
    assert_eq!(budget.available(), 64 * KIB);
}

#[tokio::test]
async fn a_body_without_length_is_counted_as_it_arrives() {
    let budget = BodyBudget::new(64 * KIB, 32 * KIB, Duration::from_millis(50));
    let (bytes, _hold) = budget
        .read(&HeaderMap::new(), chunked(5, 1000))
        .await
        .unwrap();
    assert_eq!(bytes.len(), 5000);
    assert_eq!(budget.available(), 64 * KIB - 5 * KIB);
}

#[tokio::test]
async fn too_large_is_refused_by_declared_length_or_by_bytes() {
    let budget = BodyBudget::new(64 * KIB, 32 * KIB, Duration::from_millis(50));
    let declared = budget.read(&with_length(33 * KIB), full(0)).await;
    assert_eq!(declared.unwrap_err(), GatewayError::TooLarge);
    let streamed = budget.read(&HeaderMap::new(), chunked(40, KIB)).await;
    assert_eq!(streamed.unwrap_err(), GatewayError::TooLarge);
    assert_eq!(budget.available(), 64 * KIB, "nothing kept by refusals");
}

#[tokio::test]
async fn a_body_larger_than_the_whole_budget_never_waits() {
    let budget = BodyBudget::new(16 * KIB, 32 * KIB, Duration::from_secs(60));
    let refused = budget.read(&with_length(20 * KIB), full(20 * KIB)).await;
    assert_eq!(refused.unwrap_err(), GatewayError::TooLarge);
}

#[tokio::test]
async fn a_full_budget_answers_busy_after_the_wait_and_recovers() {
    let budget = BodyBudget::new(32 * KIB, 32 * KIB, Duration::from_millis(100));
    let (_, first) = budget
        .read(&with_length(24 * KIB), full(24 * KIB))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let second = budget.read(&with_length(16 * KIB), full(16 * KIB)).await;
    assert_eq!(second.unwrap_err(), GatewayError::Busy);
    assert!(started.elapsed() >= Duration::from_millis(100));
    // A chunked body that outgrows what is left is refused too, and gives
    // back what it took.
    let third = budget.read(&HeaderMap::new(), chunked(16, KIB)).await;
    assert_eq!(third.unwrap_err(), GatewayError::Busy);
    assert_eq!(budget.available(), 8 * KIB);
    drop(first);
    let (bytes, _) = budget
        .read(&with_length(16 * KIB), full(16 * KIB))
        .await
        .unwrap();
    assert_eq!(bytes.len(), 16 * KIB);
}

#[tokio::test]
async fn a_waiting_body_goes_in_when_room_frees_up() {
    let budget = std::sync::Arc::new(BodyBudget::new(32 * KIB, 32 * KIB, Duration::from_secs(5)));
    let (_, first) = budget
        .read(&with_length(24 * KIB), full(24 * KIB))
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let budget = budget.clone();
        async move {
            budget
                .read(&with_length(16 * KIB), full(16 * KIB))
                .await
                .map(|(b, _)| b.len())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    drop(first);
    assert_eq!(waiting.await.unwrap().unwrap(), 16 * KIB);
}

#[tokio::test]
async fn a_broken_body_is_a_bad_request() {
    let budget = BodyBudget::new(64 * KIB, 32 * KIB, Duration::from_millis(50));
    let frames = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"{\"model\""))),
        Err("connection reset"),
    ];
    let body = StreamBody::new(tokio_stream::iter(frames));
    let err = budget.read(&HeaderMap::new(), body).await.unwrap_err();
    assert!(matches!(err, GatewayError::InvalidRequest(_)), "{err:?}");
    assert_eq!(budget.available(), 64 * KIB);
}

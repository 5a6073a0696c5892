//! A stream that waits in line: its head goes out at once and the
//! protocol's pings keep the client from timing out until a slot comes
//! free; then the upstream's stream follows on the same answer. A refusal
//! after the head is the protocol's error event.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::super::exchange::{proceed, refuse, Admitted, PathKind};
use super::super::{relay, BodyError, GatewayBody, GatewayError, Inner};
use crate::limit::Spend;
use crate::limits::QueueLimits;
use crate::stream::tap::ClientStream;

/// Chunks buffered toward the client (as the relay buffers them).
const CHANNEL_CHUNKS: usize = 16;

/// Answers `admitted` at once and lets it wait in `line` for its slot.
pub(in super::super) fn stream(
    inner: Arc<Inner>,
    path: PathKind,
    admitted: Admitted,
    reserve: Spend,
    line: (String, QueueLimits),
) -> Response<GatewayBody> {
    let client = admitted.inbound.wire.client_stream();
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    inner.streams.clone().spawn(wait_then_relay(
        inner, path, admitted, reserve, line, tx, client,
    ));
    let frames = ReceiverStream::new(rx).map(|chunk| Ok::<_, BodyError>(Frame::data(chunk)));
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn wait_then_relay(
    inner: Arc<Inner>,
    path: PathKind,
    admitted: Admitted,
    reserve: Spend,
    line: (String, QueueLimits),
    tx: mpsc::Sender<Bytes>,
    client: ClientStream,
) {
    let queue = line.1;
    let every = inner.config.queue_ping_interval;
    let waited = {
        let wait = inner.wait_for_limits(&admitted.key, reserve, line);
        tokio::pin!(wait);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                waited = &mut wait => break waited,
                _ = ping.tick() => {
                    if tx.send(client.ping()).await.is_err() {
                        // The client left: leaving the line is all.
                        return;
                    }
                }
                () = tx.closed() => return,
                () = inner.shutdown.cancelled() => break Err(GatewayError::Unavailable(
                    "the gateway is shutting down; retry".into(),
                )),
            }
        }
    };
    let answer = match waited {
        Ok(permit) => {
            let admitted = Admitted {
                permit: Some(permit),
                queue: Some(queue),
                ..admitted
            };
            proceed(&inner, path, admitted).await
        }
        Err(e) => Err(refuse(&inner, path, &admitted, e).await),
    };
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) => {
            let _ = tx.send(error_event(client, &e)).await;
            return;
        }
    };
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        // The head already said 200: the answer's error becomes an event.
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = relay::error_message(&bytes);
        let _ = tx.send(client.error_event(&message)).await;
        return;
    }
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map(Frame::into_data) else {
            return;
        };
        if let Ok(chunk) = data {
            // A client gone drops `body`, which tells the relay.
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    }
}

/// A refusal as the event that ends the client's stream.
fn error_event(client: ClientStream, e: &GatewayError) -> Bytes {
    match client {
        // Typed, so Claude Code reads a `rate_limit_error` as one.
        ClientStream::Anthropic => e.anthropic_event(),
        _ => client.error_event(&e.to_string()),
    }
}

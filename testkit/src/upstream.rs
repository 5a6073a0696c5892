//! What the Gemini and OpenAI mocks share: the server on 127.0.0.1, the
//! script of [`Behavior`]s, the record of requests, and the streaming of
//! events with the scripted failures.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

use crate::mock::{Behavior, MockUsage, ReceivedRequest};

/// The state of one mock.
#[derive(Debug)]
pub struct MockCore {
    pub(crate) api_key: String,
    script: Mutex<VecDeque<Behavior>>,
    received: Mutex<Vec<ReceivedRequest>>,
    gate: Notify,
    pub(crate) usage: MockUsage,
    completed_streams: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MockCore {
    pub(crate) fn new(api_key: &str, usage: MockUsage) -> Self {
        Self {
            api_key: api_key.to_owned(),
            script: Mutex::default(),
            received: Mutex::default(),
            gate: Notify::new(),
            usage,
            completed_streams: AtomicUsize::new(0),
        }
    }

    /// Reads and records a request; `None` when its body is too large.
    pub(crate) async fn receive(
        &self,
        req: Request,
    ) -> Option<(axum::http::request::Parts, Bytes)> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 64 << 20).await.ok()?;
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        lock(&self.received).push(ReceivedRequest {
            path,
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        Some((parts, body))
    }

    /// The behaviour for the next request (a normal answer by default).
    pub(crate) fn next_behavior(&self) -> Behavior {
        lock(&self.script).pop_front().unwrap_or(Behavior::Answer)
    }
}

/// A running mock: its address and the controls every mock has.
#[derive(Debug, Clone)]
pub struct MockHandle {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub addr: SocketAddr,
    pub(crate) core: Arc<MockCore>,
}

impl MockHandle {
    /// Serves `handler` on `addr` (port 0 for any).
    pub(crate) async fn start<F, Fut>(
        addr: SocketAddr,
        core: MockCore,
        handler: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(Arc<MockCore>, Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let core = Arc::new(core);
        let state = core.clone();
        let app = Router::new().fallback(move |req: Request| {
            let handler = handler.clone();
            let core = state.clone();
            async move { handler(core, req).await }
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            core,
        })
    }

    /// Queues behaviours for the next requests, in order.
    pub fn push(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        lock(&self.core.script).extend(behaviors);
    }

    /// Lets every [`Behavior::Gated`] stream go on.
    pub fn release(&self) {
        self.core.gate.notify_waiters();
        self.core.gate.notify_one();
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.core.received).clone()
    }

    pub fn hits(&self) -> usize {
        lock(&self.core.received).len()
    }

    /// Streams that ran to their last event.
    pub fn completed_streams(&self) -> usize {
        self.core.completed_streams.load(Ordering::SeqCst)
    }

    /// The usage every answer reports.
    pub fn usage(&self) -> MockUsage {
        self.core.usage
    }
}

/// A JSON response.
pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Adds headers given as strings (unusable ones are skipped).
pub(crate) fn add_headers(resp: &mut Response, headers: &[(String, String)]) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
}

/// Streams `events` as SSE with the scripted behaviour: after the first
/// `events.len() / 2` events, `ErrorMidStream` sends `error_event` and
/// `DropMidStream` breaks the connection; `Gated` waits after the first
/// event; `Slow` pauses before each.
pub(crate) fn sse(
    core: Arc<MockCore>,
    events: Vec<Bytes>,
    behavior: Behavior,
    error_event: Bytes,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let half = events.len() / 2;
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        match behavior {
            Behavior::ErrorMidStream | Behavior::DropMidStream => {
                for e in events.into_iter().take(half) {
                    if !send(e).await {
                        return;
                    }
                }
                if behavior == Behavior::ErrorMidStream {
                    let _ = send(error_event).await;
                } else {
                    // A reset in mid-stream: what was sent is on the wire
                    // first (the server drops unflushed bytes on a reset).
                    tokio::time::sleep(crate::mock::RESET_AFTER).await;
                    let _ = tx
                        .send(Err(std::io::Error::other("connection reset by mock")))
                        .await;
                }
                return;
            }
            Behavior::Gated => {
                let mut it = events.into_iter();
                if let Some(first) = it.next() {
                    if !send(first).await {
                        return;
                    }
                }
                core.gate.notified().await;
                for e in it {
                    if !send(e).await {
                        return;
                    }
                }
            }
            Behavior::Slow(pause) => {
                for e in events {
                    tokio::time::sleep(pause).await;
                    if !send(e).await {
                        return;
                    }
                }
            }
            _ => {
                for e in events {
                    if !send(e).await {
                        return;
                    }
                }
            }
        }
        core.completed_streams.fetch_add(1, Ordering::SeqCst);
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    resp
}

/// The words of the mock's answer text, for streaming them one by one.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        out.push(if i == 0 {
            w.to_owned()
        } else {
            format!(" {w}")
        });
    }
    out
}

/// A value that fits a JSON schema (OpenAPI-style upper-case types too),
/// for clients that ask for JSON output.
pub(crate) fn sample_of(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_ascii_lowercase();
    match kind.as_str() {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, s) in props {
                    out.insert(name.clone(), sample_of(s));
                }
            }
            Value::Object(out)
        }
        "array" => json!([]),
        "integer" => json!(1),
        "number" => json!(1.0),
        "boolean" => json!(true),
        _ => match schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            Some(first) => first.clone(),
            None => json!("mock"),
        },
    }
}

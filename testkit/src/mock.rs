//! A mock Anthropic Messages upstream (axum, 127.0.0.1, port 0).
//!
//! It answers `POST …/v1/messages` and `POST …/v1/messages/count_tokens`
//! under any path prefix (relays such as `/anthropic/v1/messages`), checks
//! the account key (`x-api-key` or `Authorization: Bearer`), records every
//! request it receives, and behaves as told: by default a normal answer,
//! or the next [`Behavior`] queued with [`MockUpstream::push`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

pub use crate::encoding::Encoding;

/// How long a stream that resets mid-way waits after its last event: the
/// server drops bytes not yet flushed when the connection resets, and a
/// reset "mid-stream" must come after the client has the start.
pub(crate) const RESET_AFTER: Duration = Duration::from_millis(50);

/// How the mock answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// A normal answer: SSE when the body asks `"stream": true`, else JSON.
    Answer,
    /// 429 `rate_limit_error`, with `retry-after` seconds and/or
    /// `anthropic-ratelimit-unified-reset` (epoch seconds) when given.
    RateLimited {
        retry_after: Option<u64>,
        unified_reset: Option<i64>,
    },
    /// 429 naming its wait only in the body, as Gemini does
    /// (`RetryInfo.retryDelay`, a protobuf duration such as `"37s"`). The
    /// other mocks answer a 429 that names no wait.
    ResourceExhausted { retry_delay: String },
    /// 529 `overloaded_error`.
    Overloaded,
    /// 500 `api_error`.
    ServerError,
    /// Any status with an Anthropic error body of the given type.
    Error { status: u16, kind: String },
    /// Streams the start of an answer, then an `error` event.
    ErrorMidStream,
    /// Streams the start of an answer, then drops the connection.
    DropMidStream,
    /// Streams `message_start`, then waits for [`MockUpstream::release`]
    /// before sending the rest.
    Gated,
    /// Streams every event after a pause.
    Slow(Duration),
    /// A normal answer with these response headers added, e.g.
    /// `anthropic-ratelimit-unified-5h-status: allowed_warning`.
    AnswerWithHeaders(Vec<(String, String)>),
    /// Answers with a call of tool `name` with `arguments` (every mock
    /// speaks its own protocol's tool call).
    ToolCall { name: String, arguments: Value },
    /// Reads the request and never answers, until the caller hangs up.
    StallBeforeHeaders,
    /// Sends the answer's headers (SSE or JSON), then nothing.
    StallAfterHeaders,
    /// Streams the start of an answer, then sits silent.
    StallMidStream,
    /// A normal answer (streamed or whole) compressed in this encoding,
    /// whatever the request's `accept-encoding` said.
    Compressed(Encoding),
}

/// Token counts the mock reports for every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_write_5m_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub cache_read_tokens: u64,
}

impl Default for MockUsage {
    fn default() -> Self {
        Self {
            input_tokens: 25,
            output_tokens: 12,
            cache_write_5m_tokens: 100,
            cache_write_1h_tokens: 200,
            cache_read_tokens: 50,
        }
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// Path with query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
struct MockState {
    api_key: String,
    /// More keys or OAuth access tokens accepted (see `accept_key`).
    extra_keys: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Behavior>>,
    received: Mutex<Vec<ReceivedRequest>>,
    gate: Notify,
    usage: MockUsage,
    /// Streams whose last event was sent.
    completed_streams: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running mock upstream. Dropping it does not stop the server task; it
/// ends with the runtime.
#[derive(Debug, Clone)]
pub struct MockUpstream {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<MockState>,
}

impl MockUpstream {
    /// Starts a mock that accepts `api_key`, on 127.0.0.1 port 0.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            api_key,
        )
        .await
    }

    /// Starts a mock on `addr`.
    pub async fn start_on(addr: SocketAddr, api_key: &str) -> std::io::Result<Self> {
        Self::start_with(addr, api_key, MockUsage::default()).await
    }

    /// Starts a mock on 127.0.0.1 port 0 that reports `usage` for every
    /// answer (for exact cost checks).
    pub async fn start_with_usage(api_key: &str, usage: MockUsage) -> std::io::Result<Self> {
        let addr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
        Self::start_with(addr, api_key, usage).await
    }

    async fn start_with(
        addr: SocketAddr,
        api_key: &str,
        usage: MockUsage,
    ) -> std::io::Result<Self> {
        let state = Arc::new(MockState {
            api_key: api_key.to_owned(),
            extra_keys: Mutex::default(),
            script: Mutex::default(),
            received: Mutex::default(),
            gate: Notify::new(),
            usage,
            completed_streams: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            // Streams must not wait for delayed ACKs (Nagle).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            state,
        })
    }

    /// Queues behaviours for the next requests, in order; when the queue is
    /// empty the mock answers normally.
    pub fn push(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        lock(&self.state.script).extend(behaviors);
    }

    /// Lets every [`Behavior::Gated`] stream go on.
    pub fn release(&self) {
        self.state.gate.notify_waiters();
        self.state.gate.notify_one();
    }

    /// Accepts `key` too (e.g. an access token a mock OAuth server issued).
    pub fn accept_key(&self, key: &str) {
        lock(&self.state.extra_keys).push(key.to_owned());
    }

    /// Stops accepting a key given to [`Self::accept_key`] (a revoked token).
    pub fn revoke_key(&self, key: &str) {
        lock(&self.state.extra_keys).retain(|k| k != key);
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.state.received).clone()
    }

    /// How many requests reached the mock.
    pub fn hits(&self) -> usize {
        lock(&self.state.received).len()
    }

    /// Streams that ran to their last event.
    pub fn completed_streams(&self) -> usize {
        self.state.completed_streams.load(Ordering::SeqCst)
    }

    /// The usage every answer reports.
    pub fn usage(&self) -> MockUsage {
        self.state.usage
    }
}

pub(crate) fn error_response(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    x_api_key == Some(key) || bearer == Some(key)
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return error_response(413, "request_too_large", "body too large");
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    lock(&state.received).push(ReceivedRequest {
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let accepted = lock(&state.extra_keys).clone();
    if !authorized(&parts.headers, &state.api_key)
        && !accepted.iter().any(|k| authorized(&parts.headers, k))
    {
        return error_response(401, "authentication_error", "invalid x-api-key");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(400, "invalid_request_error", "body is not JSON");
    };
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    if parts.uri.path().ends_with("/v1/messages/count_tokens") {
        let n = body.len() as u64 / 4;
        return axum::Json(json!({"input_tokens": n})).into_response();
    }
    if !parts.uri.path().ends_with("/v1/messages") {
        return error_response(404, "not_found_error", "unknown path");
    }
    let behavior = lock(&state.script).pop_front().unwrap_or(Behavior::Answer);
    match behavior {
        Behavior::RateLimited {
            retry_after,
            unified_reset,
        } => {
            let mut resp = error_response(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
            );
            let h = resp.headers_mut();
            if let Some(s) = retry_after {
                h.insert("retry-after", s.into());
            }
            if let Some(r) = unified_reset {
                h.insert("anthropic-ratelimit-unified-reset", r.into());
                h.insert(
                    "anthropic-ratelimit-unified-5h-status",
                    axum::http::HeaderValue::from_static("rejected"),
                );
            }
            resp
        }
        Behavior::ResourceExhausted { .. } => error_response(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        ),
        Behavior::Overloaded => error_response(529, "overloaded_error", "Overloaded"),
        Behavior::ServerError => error_response(500, "api_error", "Internal server error"),
        Behavior::Error { status, kind } => error_response(status, &kind, "mock error"),
        Behavior::AnswerWithHeaders(extra) => {
            let mut resp = if request["stream"] == true {
                stream_answer(state, model, Behavior::Answer)
            } else {
                json_answer(&state, &model)
            };
            for (name, value) in extra {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(name.as_bytes()),
                    axum::http::HeaderValue::from_str(&value),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            resp
        }
        Behavior::StallBeforeHeaders => std::future::pending().await,
        Behavior::StallAfterHeaders => {
            let content_type = if request["stream"] == true {
                "text/event-stream; charset=utf-8"
            } else {
                "application/json"
            };
            let silent = futures::stream::pending::<Result<Bytes, std::io::Error>>();
            Response::builder()
                .header("content-type", content_type)
                .body(Body::from_stream(silent))
                .unwrap_or_else(|_| {
                    error_response(500, "api_error", "mock failed to build a response")
                })
        }
        Behavior::Compressed(encoding) => {
            let resp = if request["stream"] == true {
                stream_answer(state, model, Behavior::Answer)
            } else {
                json_answer(&state, &model)
            };
            crate::encoding::compress(resp, encoding)
        }
        Behavior::ToolCall { name, arguments } => tool_answer(
            &state.usage,
            &model,
            &name,
            &arguments,
            request["stream"] == true,
        ),
        streaming if request["stream"] == true => stream_answer(state, model, streaming),
        _ => json_answer(&state, &model),
    }
}

fn usage_json(u: &MockUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
        "output_tokens": output,
    })
}

fn json_answer(state: &MockState, model: &str) -> Response {
    let body = json!({
        "id": "msg_mock_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Hello from the mock upstream."}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": usage_json(&state.usage, state.usage.output_tokens),
    });
    (
        [
            ("content-type", "application/json"),
            ("request-id", "req_mock_json"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// A `tool_use` answer, streamed (the input in two JSON deltas) or whole.
fn tool_answer(
    usage: &MockUsage,
    model: &str,
    name: &str,
    input: &Value,
    stream: bool,
) -> Response {
    let block = json!({"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": input});
    if !stream {
        let body = json!({"id": "msg_mock_tool", "type": "message", "role": "assistant", "model": model,
                          "content": [block], "stop_reason": "tool_use", "stop_sequence": null,
                          "usage": usage_json(usage, usage.output_tokens)});
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }
    let args = input.to_string();
    let (a, b) = args.split_at(args.len() / 2);
    let delta = |part: &str| {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": part}}),
        )
    };
    let events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_mock_tool", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "usage": usage_json(usage, 1)}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": {}}}),
        ),
        delta(a),
        delta(b),
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        event(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": usage.output_tokens}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ];
    let body = Body::from_stream(futures::stream::iter(
        events.into_iter().map(Ok::<_, std::io::Error>),
    ));
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .body(body)
        .unwrap_or_else(|_| error_response(500, "api_error", "mock failed to build a response"))
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The events of a normal streamed answer, in order.
fn answer_events(usage: &MockUsage, model: &str) -> Vec<Bytes> {
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_mock_1", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage_json(usage, 1),
            }}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for word in ["Hello", " from", " the", " mock", " upstream."] {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": usage.output_tokens}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}

fn stream_answer(state: Arc<MockState>, model: String, behavior: Behavior) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let events = answer_events(&state.usage, &model);
        let send = |b: Bytes| {
            let tx = tx.clone();
            async move { tx.send(Ok(b)).await.is_ok() }
        };
        match behavior {
            Behavior::ErrorMidStream => {
                for e in events.iter().take(4) {
                    if !send(e.clone()).await {
                        return;
                    }
                }
                let err = event(
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                );
                let _ = send(err).await;
            }
            Behavior::StallMidStream => {
                for e in events.iter().take(4) {
                    if !send(e.clone()).await {
                        return;
                    }
                }
                tx.closed().await;
            }
            Behavior::DropMidStream => {
                for e in events.iter().take(4) {
                    if !send(e.clone()).await {
                        return;
                    }
                }
                tokio::time::sleep(RESET_AFTER).await;
                let _ = tx
                    .send(Err(std::io::Error::other("connection reset by mock")))
                    .await;
            }
            Behavior::Gated => {
                let mut it = events.into_iter();
                if let Some(first) = it.next() {
                    if !send(first).await {
                        return;
                    }
                }
                state.gate.notified().await;
                for e in it {
                    if !send(e).await {
                        return;
                    }
                }
                state.completed_streams.fetch_add(1, Ordering::SeqCst);
            }
            Behavior::Slow(pause) => {
                for e in events {
                    tokio::time::sleep(pause).await;
                    if !send(e).await {
                        return;
                    }
                }
                state.completed_streams.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                for e in events {
                    if !send(e).await {
                        return;
                    }
                }
                state.completed_streams.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let body = Body::from_stream(ReceiverStream::new(rx));
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("request-id", "req_mock_stream")
        .body(body)
        .unwrap_or_else(|_| error_response(500, "api_error", "mock failed to build a response"))
}

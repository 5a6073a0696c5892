//! A Claude subscription behind a mock upstream: a 5-hour and a 7-day
//! usage window, each with a capacity in list-price micro-USD.
//!
//! Every answer carries the `anthropic-ratelimit-unified-*` headers a real
//! subscription sends, with each window's utilization as it stood before
//! the request (rounded to hundredths) and its reset. A window starts with
//! the first request after the previous one reset. Once a window is used
//! up, requests get a 429 `rate_limit_error` with `retry-after` and status
//! `rejected` until it resets. Time comes from the caller's clock, so a
//! test may replay hours in a moment.
//!
//! An answer's usage is derived from the request: input tokens are its
//! body's bytes over four, output tokens its `max_tokens`; its cost is
//! priced with the plan's per-million prices. A request with `stream: true`
//! is answered with Anthropic's event stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;

use crate::mock::{authorized, error_response};
use crate::upstream::json_response;

/// Time in epoch milliseconds, as the test sees it.
pub type NowMs = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the subscription allows and what a token costs.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionPlan {
    pub five_hour_micro_usd: i64,
    pub seven_day_micro_usd: i64,
    /// Micro-USD per million input and output tokens.
    pub input_per_mtok: i64,
    pub output_per_mtok: i64,
}

/// One window that ran: when it started and what it served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServedWindow {
    pub started_ms: u64,
    pub used_micro_usd: i64,
    pub capacity_micro_usd: i64,
}

impl ServedWindow {
    pub fn utilization(&self) -> f64 {
        self.used_micro_usd as f64 / self.capacity_micro_usd as f64
    }
}

const FIVE_HOURS_MS: u64 = 5 * 3600 * 1000;
const SEVEN_DAYS_MS: u64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Default)]
struct Windows {
    five_hour: Vec<ServedWindow>,
    seven_day: Vec<ServedWindow>,
    served: usize,
    refused: usize,
}

struct Subscription {
    api_key: String,
    plan: SubscriptionPlan,
    now: NowMs,
    windows: Mutex<Windows>,
}

/// A running subscription mock on 127.0.0.1.
pub struct SubscriptionMock {
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<Subscription>,
}

impl std::fmt::Debug for SubscriptionMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionMock")
            .field("url", &self.url)
            .field("plan", &self.state.plan)
            .finish_non_exhaustive()
    }
}

impl SubscriptionMock {
    /// Starts a subscription that accepts `api_key` (as `x-api-key` or a
    /// bearer token), on port 0.
    pub async fn start(api_key: &str, plan: SubscriptionPlan, now: NowMs) -> std::io::Result<Self> {
        let state = Arc::new(Subscription {
            api_key: api_key.to_owned(),
            plan,
            now,
            windows: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/messages", axum::routing::post(messages))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            state,
        })
    }

    /// The 5-hour windows so far, oldest first.
    pub fn five_hour_windows(&self) -> Vec<ServedWindow> {
        self.state.lock().five_hour.clone()
    }

    /// Requests served and refused with a 429.
    pub fn counts(&self) -> (usize, usize) {
        let w = self.state.lock();
        (w.served, w.refused)
    }
}

impl Subscription {
    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The window running at `now`, opened if the last one has reset.
fn current(
    windows: &mut Vec<ServedWindow>,
    now: u64,
    length: u64,
    capacity: i64,
) -> &mut ServedWindow {
    let open = windows.last().is_some_and(|w| now < w.started_ms + length);
    if !open {
        windows.push(ServedWindow {
            started_ms: now,
            used_micro_usd: 0,
            capacity_micro_usd: capacity,
        });
    }
    let last = windows.len() - 1;
    &mut windows[last]
}

async fn messages(State(sub): State<Arc<Subscription>>, req: Request) -> Response {
    let key_ok = authorized(req.headers(), &sub.api_key);
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    if !key_ok {
        return error_response(401, "authentication_error", "invalid x-api-key");
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-sonnet-4-5")
        .to_owned();
    let input = body.len() as i64 / 4;
    let output = request["max_tokens"].as_i64().unwrap_or(1024);
    let cost = (input * sub.plan.input_per_mtok + output * sub.plan.output_per_mtok) / 1_000_000;

    let now = (sub.now)();
    let plan = sub.plan;
    let mut w = sub.lock();
    let five = *current(
        &mut w.five_hour,
        now,
        FIVE_HOURS_MS,
        plan.five_hour_micro_usd,
    );
    let seven = *current(
        &mut w.seven_day,
        now,
        SEVEN_DAYS_MS,
        plan.seven_day_micro_usd,
    );
    let five_reset = (five.started_ms + FIVE_HOURS_MS) / 1000;
    let seven_reset = (seven.started_ms + SEVEN_DAYS_MS) / 1000;
    let exhausted = [(five, five_reset), (seven, seven_reset)]
        .into_iter()
        .filter(|(win, _)| win.used_micro_usd >= win.capacity_micro_usd)
        .map(|(_, reset)| reset)
        .max();
    let status_of = |win: &ServedWindow| {
        let u = win.utilization();
        if u >= 1.0 {
            "rejected"
        } else if u >= 0.9 {
            "allowed_warning"
        } else {
            "allowed"
        }
    };
    let headers = [
        (
            "anthropic-ratelimit-unified-status",
            status_of(&five).to_owned(),
        ),
        ("anthropic-ratelimit-unified-reset", five_reset.to_string()),
        (
            "anthropic-ratelimit-unified-representative-claim",
            "five_hour".to_owned(),
        ),
        (
            "anthropic-ratelimit-unified-5h-status",
            status_of(&five).to_owned(),
        ),
        (
            "anthropic-ratelimit-unified-5h-reset",
            five_reset.to_string(),
        ),
        (
            "anthropic-ratelimit-unified-5h-utilization",
            hundredths(five.utilization()),
        ),
        (
            "anthropic-ratelimit-unified-7d-status",
            status_of(&seven).to_owned(),
        ),
        (
            "anthropic-ratelimit-unified-7d-reset",
            seven_reset.to_string(),
        ),
        (
            "anthropic-ratelimit-unified-7d-utilization",
            hundredths(seven.utilization()),
        ),
    ];
    let mut resp = if let Some(reset) = exhausted {
        w.refused += 1;
        let mut r = error_response(
            429,
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later.",
        );
        let wait = reset.saturating_sub(now / 1000).max(1);
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(wait));
        r
    } else {
        let w = &mut *w;
        w.served += 1;
        for win in [w.five_hour.last_mut(), w.seven_day.last_mut()]
            .into_iter()
            .flatten()
        {
            win.used_micro_usd += cost;
        }
        let id = format!("msg_sub{}", w.served);
        if request["stream"].as_bool() == Some(true) {
            stream(&id, &model, input, output)
        } else {
            let answer = serde_json::json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "Done."}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": output},
            });
            json_response(200, &answer)
        }
    };
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// The answer as Anthropic's event stream.
fn stream(id: &str, model: &str, input: i64, output: i64) -> Response {
    let events = [
        (
            "message_start",
            serde_json::json!({"type": "message_start", "message": {"id": id, "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Done."}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": output}}),
        ),
        ("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    let body: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    r
}

fn hundredths(u: f64) -> String {
    format!("{:.2}", (u.min(1.0) * 100.0).floor() / 100.0)
}

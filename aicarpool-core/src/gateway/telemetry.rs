//! The data plane's metrics, through the [`metrics`] facade: whoever
//! embeds the gateway installs a recorder (the server exports Prometheus
//! text), and without one every call here costs next to nothing.
//!
//! Label values are bounded: protocols, statuses, refusal reasons, token
//! kinds and platforms are small fixed sets; ids (accounts) only where the
//! embedder sets gauges from [`Gateway::account_health`](super::Gateway::account_health).
//! No name, model or other text a user typed becomes a label.
//!
//! The gateway's own time is the request's time to its answer's head
//! minus the time its upstream attempts took, which each request adds up
//! in a task-local as its attempts run.

use std::cell::Cell;
use std::time::Duration;

use crate::account::Protocol;
use crate::usage::UsageRecord;

pub const REQUESTS_TOTAL: &str = "aicarpool_requests_total";
pub const REQUEST_DURATION: &str = "aicarpool_request_duration_seconds";
pub const OVERHEAD: &str = "aicarpool_overhead_seconds";
pub const UPSTREAM_DURATION: &str = "aicarpool_upstream_duration_seconds";
pub const TIME_TO_FIRST_BYTE: &str = "aicarpool_time_to_first_byte_seconds";
pub const TOKENS_TOTAL: &str = "aicarpool_tokens_total";
pub const COST_USD_TOTAL: &str = "aicarpool_cost_usd_total";
pub const INFLIGHT: &str = "aicarpool_inflight_requests";
pub const ACCOUNT_STATE: &str = "aicarpool_account_state";
pub const WINDOW_UTILIZATION: &str = "aicarpool_subscription_window_utilization";
pub const USAGE_WRITER_QUEUE: &str = "aicarpool_usage_writer_queue";
pub const LIMITER_ERRORS: &str = "aicarpool_limiter_errors_total";

/// The header every data-plane answer carries: the gateway's own time in
/// milliseconds, its upstream's excluded.
pub const OVERHEAD_HEADER: &str = "x-aicarpool-overhead-ms";

/// Describes every metric, for the recorder's `# HELP` lines.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS_TOTAL,
        "Data-plane requests answered, by client protocol, status and refusal reason"
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "From a request's arrival to the end of its answer"
    );
    describe_histogram!(
        OVERHEAD,
        Unit::Seconds,
        "The gateway's own time to an answer's head, its upstream attempts excluded"
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "One upstream attempt, until its answer was ready to relay, by account platform"
    );
    describe_histogram!(
        TIME_TO_FIRST_BYTE,
        Unit::Seconds,
        "From a request's arrival to its answer's head"
    );
    describe_counter!(TOKENS_TOTAL, "Tokens settled, by kind");
    describe_gauge!(
        COST_USD_TOTAL,
        "Cost settled at list or account prices, USD (only grows)"
    );
    describe_gauge!(INFLIGHT, "Requests being handled plus streams still open");
    describe_gauge!(ACCOUNT_STATE, "1 for an account's routing state now");
    describe_gauge!(
        WINDOW_UTILIZATION,
        "A subscription window's utilization, 0 to 1, as its upstream last reported"
    );
    describe_gauge!(USAGE_WRITER_QUEUE, "Usage records waiting to be written");
    describe_counter!(
        LIMITER_ERRORS,
        "Admissions the shared limiter could not decide (its backend did not answer)"
    );
}

fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Anthropic => "anthropic",
        Protocol::Gemini => "gemini",
        Protocol::Openai => "openai",
    }
}

tokio::task_local! {
    /// Upstream time of the request this task serves.
    static UPSTREAM_TIME: Cell<Duration>;
}

/// Serves one data-plane request through `serve`, counted in flight, and
/// observes its answer's head (see [`answered`]).
pub(super) async fn observed(
    protocol: Protocol,
    started: std::time::Instant,
    serve: impl std::future::Future<Output = http::Response<super::GatewayBody>>,
) -> http::Response<super::GatewayBody> {
    let _in_flight = InFlight::start();
    let (mut response, upstream) = timing_upstream(serve).await;
    answered(protocol, &mut response, started.elapsed(), upstream);
    response
}

/// Runs `serve` with a clock of its upstream time; returns its result and
/// the time its upstream attempts took.
async fn timing_upstream<F: std::future::Future>(serve: F) -> (F::Output, Duration) {
    UPSTREAM_TIME
        .scope(Cell::new(Duration::ZERO), async move {
            let out = serve.await;
            let upstream = UPSTREAM_TIME.try_with(Cell::get).unwrap_or_default();
            (out, upstream)
        })
        .await
}

/// One upstream attempt took `took` (to a usable answer or its failure).
pub(super) fn upstream_attempt(platform: &'static str, took: Duration) {
    let _ = UPSTREAM_TIME.try_with(|t| t.set(t.get() + took));
    metrics::histogram!(UPSTREAM_DURATION, "platform" => platform).record(took);
}

/// An answer's head is going out: counts it, records the gateway's own
/// time and writes it in the answer's headers.
fn answered(
    protocol: Protocol,
    response: &mut http::Response<super::GatewayBody>,
    elapsed: Duration,
    upstream: Duration,
) {
    let overhead = elapsed.saturating_sub(upstream);
    let status = response.status();
    let refusal = response
        .headers()
        .get(crate::gateway::REFUSAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::usage::RefusalReason::parse)
        .map_or("none", |r| r.as_str());
    let protocol = protocol_label(protocol);
    metrics::counter!(REQUESTS_TOTAL, "protocol" => protocol, "status" => status_label(status), "refusal" => refusal)
        .increment(1);
    metrics::histogram!(OVERHEAD, "protocol" => protocol).record(overhead);
    let ms = format!("{:.3}", overhead.as_secs_f64() * 1000.0);
    if let Ok(v) = http::HeaderValue::from_str(&ms) {
        response.headers_mut().insert(OVERHEAD_HEADER, v);
    }
}

/// Status codes as labels, from a fixed set.
fn status_label(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        426 => "426",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        508 => "508",
        529 => "529",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// A request was settled: its duration, time to first byte, tokens and cost.
pub(super) fn settled(protocol: Protocol, record: &UsageRecord) {
    let protocol = protocol_label(protocol);
    metrics::histogram!(REQUEST_DURATION, "protocol" => protocol)
        .record(Duration::from_millis(record.latency_ms));
    if let Some(ttfb) = record.ttfb_ms {
        metrics::histogram!(TIME_TO_FIRST_BYTE, "protocol" => protocol)
            .record(Duration::from_millis(ttfb));
    }
    let u = &record.usage;
    for (kind, n) in [
        ("input", u.input_tokens),
        ("output", u.output_tokens),
        ("cache_write_5m", u.cache_write_5m_tokens),
        ("cache_write_1h", u.cache_write_1h_tokens),
        ("cache_read", u.cache_read_tokens),
    ] {
        if n > 0 {
            metrics::counter!(TOKENS_TOTAL, "kind" => kind).increment(n);
        }
    }
    if record.cost_micro_usd > 0 {
        metrics::gauge!(COST_USD_TOTAL).increment(record.cost_micro_usd as f64 / 1e6);
    }
}

/// The shared limiter could not decide an admission.
pub(super) fn limiter_error() {
    metrics::counter!(LIMITER_ERRORS).increment(1);
}

/// Counts one request or open stream in flight while it lives.
#[derive(Debug)]
pub(super) struct InFlight(());

impl InFlight {
    pub(super) fn start() -> Self {
        metrics::gauge!(INFLIGHT).increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(INFLIGHT).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attempts_add_up_in_their_requests_own_clock() {
        let (out, upstream) = timing_upstream(async {
            upstream_attempt("claude_api", Duration::from_millis(30));
            upstream_attempt("claude_api", Duration::from_millis(12));
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(upstream, Duration::from_millis(42));
        // Outside a request's scope an attempt is only recorded.
        upstream_attempt("claude_api", Duration::from_millis(5));
    }

    #[test]
    fn statuses_are_a_bounded_set() {
        assert_eq!(status_label(http::StatusCode::OK), "200");
        assert_eq!(
            status_label(http::StatusCode::from_u16(418).unwrap()),
            "4xx"
        );
        assert_eq!(
            status_label(http::StatusCode::from_u16(599).unwrap()),
            "5xx"
        );
    }
}

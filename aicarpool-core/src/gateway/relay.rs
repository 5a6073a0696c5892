//! Relaying the upstream answer to the client and settling its usage.
//!
//! A streamed answer is pumped by its own task: each chunk goes to the
//! client as soon as it arrives, through a small bounded channel, so a slow
//! client slows the upstream read instead of growing a buffer. If the client
//! goes away, the task keeps reading (bounded in time and bytes) so the
//! final usage is still recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::full;
use super::exchange::{Leg, RequestContext};
use super::fair_share::PendingCharge;
use super::{BodyError, GatewayBody, GatewayError, Inner};
use crate::account::Protocol;
use crate::key::KeyRecord;
use crate::limit::{Permit, Spend};
use crate::provider::is_dropped_response_header;
use crate::router::{Candidate, InFlightLease, Outcome, Report};
use crate::stream::tap::StreamTap;
use crate::usage::{Accuracy, Usage, UsageRecord};

/// Chunks buffered between the upstream reader and the client at most.
const CHANNEL_CHUNKS: usize = 16;

/// Longest an answer waits for its settlement to reach a shared limiter.
const SETTLEMENT_WAIT: Duration = Duration::from_secs(1);

/// What settling a request needs once the answer is over.
struct Settlement {
    inner: Arc<Inner>,
    key: Arc<KeyRecord>,
    model: String,
    upstream_model: String,
    account_id: String,
    started: Instant,
    /// When the answer's head was ready for the client.
    ttfb: Duration,
    attempts: u32,
    failed_over: Vec<String>,
    record_usage: bool,
    /// Errors are written in the client's protocol.
    client: Protocol,
    /// Held until the answer is over: the account's concurrency slot.
    _lease: InFlightLease,
    /// The account's subscription windows to charge the use to.
    window_charge: Option<PendingCharge>,
    /// The member's limits: the reservation is settled with the real
    /// usage; dropped unsettled (panic, cancelled task) it is released.
    permit: Option<Permit>,
    /// Last, so it drops after the slots above: requests waiting in line
    /// for one retry then.
    _freed: SlotsFreed,
}

/// Wakes the requests waiting for a concurrency slot when dropped.
struct SlotsFreed(Arc<Inner>);

impl Drop for SlotsFreed {
    fn drop(&mut self) {
        self.0.waiting.freed();
    }
}

impl Settlement {
    /// The client left: its member concurrency slot is free again while
    /// the upstream is drained for usage.
    fn client_left(&mut self) {
        if let Some(p) = self.permit.as_mut() {
            p.end_lease();
            self.inner.waiting.freed();
        }
    }

    async fn settle(mut self, usage: Usage, status: u16, accuracy: Accuracy) {
        if !self.record_usage {
            return;
        }
        let mut record = self.inner.usage_record(
            &self.key,
            &self.model,
            &self.upstream_model,
            Some(self.account_id.clone()),
            usage,
            status,
            accuracy,
            self.started,
        );
        if self.upstream_model != self.model {
            record.served_model = Some(self.upstream_model.clone());
        }
        record.ttfb_ms = Some(u64::try_from(self.ttfb.as_millis()).unwrap_or(u64::MAX));
        record.attempts = self.attempts;
        record.failed_over = std::mem::take(&mut self.failed_over);
        // Like the limits: before the answer ends, so the member's next
        // request is judged on this one's use too.
        if let Some(pending) = self.window_charge.take() {
            self.inner
                .charge_windows(
                    pending,
                    &self.upstream_model,
                    &record.usage,
                    SETTLEMENT_WAIT,
                )
                .await;
        }
        super::telemetry::settled(self.client, &record);
        // Counters first, so they never lag the store; and before the
        // answer ends, so the member's next request sees the settled spend
        // rather than this reservation. A slow shared backend holds the
        // answer back only so long.
        if let Some(p) = self.permit.take() {
            p.settle(Spend::of(&record.usage, record.cost_micro_usd))
                .wait_at_most(SETTLEMENT_WAIT)
                .await;
        }
        self.inner.queue_record(record).await;
    }
}

/// What an answer holds until it is settled.
pub(super) struct Settle {
    /// The account's concurrency slot.
    pub lease: InFlightLease,
    pub charge: Option<PendingCharge>,
}

/// Forwards the upstream's answer (success or the client's own 4xx)
/// through the leg's tap or whole-body reader.
pub(super) async fn respond(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    leg: &dyn Leg,
    candidate: &Candidate,
    settle: Settle,
    upstream: reqwest::Response,
) -> Response<GatewayBody> {
    let status = upstream.status();
    let permit = ctx.take_permit();
    let mut builder = Response::builder().status(status);
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in upstream.headers() {
            if !is_dropped_response_header(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some(p) = &permit {
            p.remaining().write_headers(headers);
        }
    }
    let settlement = Settlement {
        inner: inner.clone(),
        key: ctx.key.clone(),
        model: ctx.model.clone(),
        upstream_model: candidate
            .account
            .account
            .upstream_model(&ctx.model)
            .to_owned(),
        account_id: candidate.account.account.id.clone(),
        started: ctx.started,
        ttfb: ctx.started.elapsed(),
        attempts: ctx.attempts(),
        failed_over: ctx.failed_over(),
        record_usage: ctx.metered,
        client: ctx.client,
        _lease: settle.lease,
        window_charge: settle.charge,
        permit,
        _freed: SlotsFreed(inner.clone()),
    };
    let is_stream = super::first_byte::is_event_stream(upstream.headers());
    // The whole answer is bounded from the request's arrival.
    let total_deadline = tokio::time::Instant::from_std(ctx.started + inner.config.total_timeout);

    let body = if is_stream && status.is_success() {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let idle = inner.config.idle_timeout;
        let tap = leg.tap(ctx);
        let open = super::telemetry::InFlight::start();
        inner.streams.spawn(pump(
            upstream.bytes_stream().boxed(),
            tx,
            settlement,
            tap,
            Bounds {
                idle,
                total_deadline,
            },
            open,
        ));
        let frames = ReceiverStream::new(rx).map(|chunk| Ok::<_, BodyError>(Frame::data(chunk)));
        StreamBody::new(frames).boxed_unsync()
    } else {
        let limit = inner.config.max_response_bytes;
        let read = tokio::time::timeout_at(total_deadline, read_all(upstream, limit)).await;
        match read {
            Ok(Ok(bytes)) => {
                let (usage, bytes) = leg.whole(ctx, status, bytes);
                let accuracy = if usage.is_some() {
                    Accuracy::Exact
                } else {
                    Accuracy::Estimated
                };
                settlement
                    .settle(usage.unwrap_or_default(), status.as_u16(), accuracy)
                    .await;
                full(bytes)
            }
            Ok(Err(reason)) => return upstream_body_failed(settlement, reason).await,
            Err(_) => {
                return upstream_body_failed(settlement, "the upstream answer timed out".into())
                    .await
            }
        }
    };
    builder.body(body).unwrap_or_else(|_| {
        GatewayError::BadUpstream("invalid upstream headers".into()).into_response(ctx.client)
    })
}

async fn upstream_body_failed(settlement: Settlement, reason: String) -> Response<GatewayBody> {
    let e = GatewayError::BadUpstream(format!("reading the upstream answer failed: {reason}"));
    let client = settlement.client;
    let outcome = Outcome::Failed {
        status: None,
        reason,
    };
    settlement
        .inner
        .router
        .report(&Report::new(&settlement.account_id, outcome));
    settlement
        .settle(Usage::default(), e.status().as_u16(), Accuracy::Partial)
        .await;
    e.into_response(client)
}

/// Bare chunks, framed on the client's side: a channel slot then takes the
/// size of `Bytes`, not of a frame that could hold trailers, and the
/// channel's block of slots is a third the size for every open stream.
type ChunkSender = mpsc::Sender<Bytes>;

/// How long a stream may go on.
struct Bounds {
    /// Longest silence between two chunks.
    idle: Duration,
    /// When the whole answer must be over.
    total_deadline: tokio::time::Instant,
}

/// Reads the upstream stream to the end, forwarding (through the tap)
/// while the client listens and draining (bounded) after it leaves; then
/// settles.
async fn pump(
    mut upstream: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    tx: ChunkSender,
    mut settlement: Settlement,
    mut tap: Box<dyn StreamTap>,
    bounds: Bounds,
    // Counted in flight until the stream is over.
    _open: super::telemetry::InFlight,
) {
    let inner = settlement.inner.clone();
    let config = &inner.config;
    let mut client = Some(tx);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut drained = 0usize;
    let mut broken: Option<String> = None;

    loop {
        let now = tokio::time::Instant::now();
        let wait = match drain_deadline {
            Some(d) => d.saturating_duration_since(now),
            None => bounds
                .idle
                .min(bounds.total_deadline.saturating_duration_since(now)),
        };
        let next = tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => {
                broken = Some("the gateway is shutting down".into());
                break;
            }
            next = tokio::time::timeout(wait, upstream.next()) => next,
        };
        let chunk = match next {
            Err(_) => {
                broken = Some(if drain_deadline.is_some() {
                    "stopped draining: time limit".into()
                } else if tokio::time::Instant::now() >= bounds.total_deadline {
                    "the answer ran past the gateway's total time limit".into()
                } else {
                    "the upstream stream went idle".into()
                });
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // The detail names the upstream URL: the log keeps it, the
                // member is told the class.
                tracing::warn!(account_id = %settlement.account_id, error = %e, "upstream stream broke");
                broken = Some("the upstream stream broke".into());
                break;
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        let len = chunk.len();
        let chunk = tap.chunk(chunk);
        match &client {
            Some(tx) => {
                let sent = chunk.is_empty()
                    || tokio::select! {
                        biased;
                        () = inner.shutdown.cancelled() => false,
                        sent = tx.send(chunk) => sent.is_ok(),
                    };
                if !sent {
                    tracing::debug!(account_id = %settlement.account_id, "client left mid-stream; draining for usage");
                    settlement.client_left();
                    client = None;
                    drained = len;
                    drain_deadline = Some(tokio::time::Instant::now() + config.drain_timeout);
                }
            }
            None => {
                drained += len;
                if drained > config.drain_max_bytes {
                    broken = Some("stopped draining: byte limit".into());
                    break;
                }
            }
        }
    }

    // The tap's last bytes: closing frames, or — the client still being
    // there — its protocol's error event when the stream broke.
    let (tail, seen) = tap.end(broken.as_deref());
    if let (false, Some(tx)) = (tail.is_empty(), &client) {
        let _ = tx.send(tail).await;
    }
    let accuracy = if seen.completed {
        Accuracy::Exact
    } else {
        Accuracy::Partial
    };
    let status = match (&seen.error, &broken) {
        (Some(e), _) => e.status,
        (None, Some(_)) if !seen.completed => 502,
        _ => 200,
    };
    // An error event counts against the account (an invalid request is the
    // client's fault); a break counts only when the upstream caused it,
    // not when the client left or the gateway is shutting down.
    if let Some(e) = &seen.error {
        let outcome = match status {
            529 => Outcome::Overloaded,
            429 => Outcome::RateLimited,
            400 => Outcome::ClientError { status },
            _ => Outcome::Failed {
                status: Some(status),
                reason: e.message.clone(),
            },
        };
        inner
            .router
            .report(&Report::new(&settlement.account_id, outcome));
    } else if let Some(reason) =
        broken.filter(|_| !seen.completed && client.is_some() && !inner.shutdown.is_cancelled())
    {
        let outcome = Outcome::Failed {
            status: None,
            reason,
        };
        inner
            .router
            .report(&Report::new(&settlement.account_id, outcome));
    }
    settlement.settle(seen.usage, status, accuracy).await;
}

/// Reads a whole body up to `limit` bytes. A body in one chunk (as
/// dispatch hands over a whole answer it has read already) is not copied.
async fn read_all(resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    let mut stream = resp.bytes_stream();
    let mut first: Option<Bytes> = None;
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::warn!(error = %e, "reading the upstream answer failed");
            "reading the upstream answer failed".to_owned()
        })?;
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if held + chunk.len() > limit {
            return Err(format!("the upstream answer is larger than {limit} bytes"));
        }
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            earlier => {
                if let Some(earlier) = earlier {
                    buf.extend_from_slice(&earlier);
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buf)))
}

/// Reads at most `limit` bytes of a body (for error messages).
pub(super) async fn read_bounded(resp: reqwest::Response, limit: usize) -> Bytes {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Bytes::from(buf)
}

/// The message of an upstream error body (`error.message`), else its text.
pub(super) fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    });
    let mut msg = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if msg.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| msg.is_char_boundary(i))
            .unwrap_or(0);
        msg.truncate(cut);
        msg.push('…');
    }
    if msg.is_empty() {
        msg = "no error message".into();
    }
    msg
}

impl Inner {
    /// One usage record, priced at `price_model` (the model the account
    /// was sent) with the account's own pricing if it has any.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn usage_record(
        &self,
        key: &KeyRecord,
        model: &str,
        price_model: &str,
        account_id: Option<String>,
        usage: Usage,
        status: u16,
        accuracy: Accuracy,
        started: Instant,
    ) -> UsageRecord {
        let cost = self
            .pricing
            .cost_for_account(account_id.as_deref(), price_model, &usage);
        UsageRecord {
            account_id,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            status,
            accuracy,
            ..UsageRecord::new(&key.id, &key.user_id, &key.group_id, model, usage, cost)
        }
    }

    /// Logs the settled request and hands its record to the writer.
    pub(super) async fn queue_record(&self, record: UsageRecord) {
        tracing::info!(
            key_id = %record.key_id,
            group_id = %record.group_id,
            account_id = record.account_id.as_deref().unwrap_or("-"),
            model = %record.model,
            status = record.status,
            input = record.usage.input_tokens,
            output = record.usage.output_tokens,
            cache_write = record.usage.cache_write_tokens(),
            cache_read = record.usage.cache_read_tokens,
            latency_ms = record.latency_ms,
            accuracy = record.accuracy.as_str(),
            "request settled"
        );
        self.usage.record(record).await;
    }
}

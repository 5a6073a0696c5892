//! Dispatch: try the router's candidates until one answers.

use std::sync::Arc;
use std::time::Instant;

use http::Response;

use super::answer::Answer;
use super::exchange::{RequestContext, Wire};
use super::first_byte::{self, NotReady, Patience};
use super::routes::RouteTable;
use super::{failover, relay, telemetry, GatewayBody, GatewayError, Inner, Invalidation};
use crate::account::Protocol;
use crate::provider::retry_after;
use crate::router::window::RateSignals;
use crate::router::{CoolReason, HealthState, Outcome, Report, RouteRequest, Tally};

/// Why no candidate answered.
struct Unserved {
    error: GatewayError,
    /// The account of the last attempt.
    last_account: Option<String>,
    /// Every account in the way was only at its concurrency limit.
    only_busy: bool,
}

impl Unserved {
    fn new(error: GatewayError) -> Self {
        Self {
            error,
            last_account: None,
            only_busy: false,
        }
    }
}

/// Tries the planned candidates until one answers (see
/// [`dispatch_once`]). When every account is only at its concurrency
/// limit and the limits let the request wait (`limits.queue`), it waits
/// in its group's line and tries again as slots come free. Returns the
/// account id of the last attempt along with an error.
pub(super) async fn dispatch(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    wire: &dyn Wire,
) -> Result<Response<GatewayBody>, (GatewayError, Option<String>)> {
    let first = dispatch_once(inner, ctx, wire).await;
    let queue = match (&first, ctx.queue) {
        (Err(u), Some(queue)) if u.only_busy => queue,
        _ => return first.map_err(|u| (u.error, u.last_account)),
    };
    let line = format!("accounts:{}", ctx.key.group_id);
    let waited = inner
        .waiting
        .wait(&line, queue, move || async move {
            match dispatch_once(inner, ctx, wire).await {
                Err(u) if u.only_busy => None,
                done => Some(done),
            }
        })
        .await;
    match waited {
        Ok(done) => done.map_err(|u| (u.error, u.last_account)),
        Err(gave_up) => Err((
            GatewayError::Overloaded(format!(
                "every account of this group is at its concurrency limit and {}",
                gave_up.describe()
            )),
            None,
        )),
    }
}

/// Tries the accounts that may serve the request, one protocol after
/// another in the wire's order (its own first, then those reached through
/// translation), until one answers.
async fn dispatch_once(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    wire: &dyn Wire,
) -> Result<Response<GatewayBody>, Unserved> {
    let table = inner
        .route_table(&ctx.key.group_id)
        .await
        .map_err(Unserved::new)?;
    let client = wire.client_api();
    let mut protocols = wire.upstreams().iter().copied().filter(|p| {
        table
            .candidates
            .iter()
            .any(|c| c.serves(*p, client, &ctx.model))
    });
    let Some(first) = protocols.next() else {
        return Err(Unserved::new(unserved(ctx, wire, &table.candidates)));
    };
    let mut unserved = match dispatch_protocol(inner, ctx, wire, &table, first).await {
        Ok(resp) => return Ok(resp),
        Err(u) => u,
    };
    for protocol in protocols {
        if ctx.attempts() as usize >= inner.config.max_attempts.max(1) {
            break;
        }
        match dispatch_protocol(inner, ctx, wire, &table, protocol).await {
            Ok(resp) => return Ok(resp),
            Err(next) => unserved = unserved.then(next),
        }
    }
    Err(unserved)
}

impl Unserved {
    /// What to tell the client after another protocol failed too: the
    /// later attempt's error when it tried an account, else the earlier.
    fn then(self, next: Unserved) -> Unserved {
        let only_busy = self.only_busy && next.only_busy;
        let kept = if next.last_account.is_some() {
            next
        } else {
            self
        };
        Unserved { only_busy, ..kept }
    }
}

/// Tries the planned candidates of one account protocol until one
/// answers: at most `max_attempts` in all, none started after the
/// request's deadline, each one reported to the router.
async fn dispatch_protocol(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    wire: &dyn Wire,
    table: &RouteTable,
    protocol: Protocol,
) -> Result<Response<GatewayBody>, Unserved> {
    let max_attempts = inner.config.max_attempts.max(1);
    // Only conversations bind accounts; `count_tokens` calls do not.
    let session = ctx
        .session
        .filter(|_| ctx.metered)
        .map(|s| s.scoped(&ctx.key.id));
    let request = RouteRequest {
        group_id: &ctx.key.group_id,
        key_id: &ctx.key.id,
        protocol,
        client: wire.client_api(),
        model: &ctx.model,
        session,
        // Spares for accounts found busy at attempt time.
        max_candidates: max_attempts + 2,
    };
    let plan = inner.router.plan(&request, &table.candidates);
    let leg = wire.leg(protocol, ctx).map_err(Unserved::new)?;

    let deadline = failover::deadline(&ctx.headers, &inner.config, ctx.started);
    let mut tally = Tally::from_held_back(&plan.held_back);
    let mut last_message: Option<String> = None;
    let mut last_account = None;
    let mut out_of_time = false;
    let mut over_share = None;
    for candidate in &plan.candidates {
        if ctx.attempts() as usize >= max_attempts {
            break;
        }
        let first_byte = if ctx.streamed {
            inner.config.stream_first_byte_timeout
        } else {
            inner.config.first_byte_timeout
        };
        let timeout = first_byte.min(deadline.saturating_duration_since(Instant::now()));
        if timeout.is_zero() {
            out_of_time = true;
            break;
        }
        let account_id = candidate.account.account.id.as_str();
        // Another account may still serve a member over their share here.
        if let Some(refusal) = inner.over_share(ctx, &table.fairness, candidate).await {
            over_share.get_or_insert(refusal);
            continue;
        }
        let Some(lease) = candidate.account.try_lease() else {
            tally.busy();
            continue;
        };
        // Checked again now: it may have cooled since the plan, and a
        // half-open account takes one probe at a time.
        let Some(permit) = inner.router.begin(account_id) else {
            tally.busy();
            continue;
        };
        ctx.count_attempt(account_id);
        last_account = Some(account_id.to_owned());
        let attempt_started = Instant::now();
        let platform = candidate.account.account.platform.as_str();
        let call = leg.send(inner, ctx, &candidate.account);
        let resp = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(resp)) => resp,
            failed => {
                telemetry::upstream_attempt(platform, attempt_started.elapsed());
                let not_ready = match failed {
                    Ok(Err(e)) => NotReady {
                        reason: e.to_string(),
                        public: e.public_message(),
                    },
                    _ => NotReady {
                        reason: "the upstream did not answer in time".to_owned(),
                        public: "the upstream did not answer in time",
                    },
                };
                last_message = Some(attempt_failed(inner, &mut tally, account_id, not_ready));
                continue;
            }
        };
        let latency = attempt_started.elapsed();
        // An error body is read within what is left of the attempt's
        // first-byte budget: a refusal that stalls must not hold failover.
        let first_byte_by = attempt_started + timeout;
        let left = first_byte_by.saturating_duration_since(Instant::now());
        let mut answer = Answer::read(protocol, resp, left).await;
        if answer.class.fails_over() {
            telemetry::upstream_attempt(platform, attempt_started.elapsed());
        } else {
            // Nothing has reached the client yet: an answer that stalls or
            // breaks before its first byte still fails over.
            let patience = Patience {
                first_byte_by: first_byte_by.into(),
                between_chunks: first_byte.min(inner.config.idle_timeout),
                read_by: (ctx.started + inner.config.total_timeout).into(),
                max_bytes: inner.config.max_response_bytes,
            };
            let ready = first_byte::ready(answer.resp, &patience).await;
            telemetry::upstream_attempt(platform, attempt_started.elapsed());
            match ready {
                Ok(resp) => answer.resp = resp,
                Err(not_ready) => {
                    last_message = Some(attempt_failed(inner, &mut tally, account_id, not_ready));
                    continue;
                }
            }
        }
        let report = Report::new(account_id, answer.outcome(latency))
            .headers(answer.resp.headers())
            .retry_after(answer.retry_after)
            .session(session);
        inner.router.report(&report);
        share_cooling(inner, &report);
        drop(permit);
        if !answer.class.fails_over() {
            let charge =
                inner.pending_charge(ctx, &table.fairness, candidate, answer.resp.headers());
            let settle = relay::Settle { lease, charge };
            return Ok(relay::respond(inner, ctx, &*leg, candidate, settle, answer.resp).await);
        }
        // A `retry-after` header wins over a wait named in the body.
        let wait = retry_after(answer.resp.headers()).or(answer.retry_after);
        tally.attempt(&report.outcome, wait);
        let status = answer.resp.status().as_u16();
        let message = relay::error_message(&answer.head);
        tracing::warn!(account_id, status, %message, "upstream refused; trying the next account");
        last_message = Some(message);
    }
    if let (Some(refusal), None) = (over_share, &last_account) {
        return Err(Unserved::new(refusal));
    }
    Err(Unserved {
        error: failover::refusal(&tally, last_message.as_deref(), out_of_time),
        last_account,
        only_busy: tally.only_busy() && !out_of_time,
    })
}

/// Reports an attempt that got no usable answer; the log and the router
/// keep the detail (it names the upstream), the member is told the class
/// only, which is returned.
fn attempt_failed(
    inner: &Inner,
    tally: &mut Tally,
    account_id: &str,
    not_ready: NotReady,
) -> String {
    tracing::warn!(account_id, error = %not_ready.reason, "upstream attempt failed");
    let outcome = Outcome::Failed {
        status: None,
        reason: not_ready.reason,
    };
    tally.attempt(&outcome, None);
    inner.router.report(&Report::new(account_id, outcome));
    not_ready.public.to_owned()
}

/// Tells the other instances when a 429 that named its end cooled the
/// account, so they do not each spend a request to learn it. A 429 without
/// a named wait (a guessed backoff) and other failures stay local.
fn share_cooling(inner: &Inner, report: &Report<'_>) {
    let Some(bus) = &inner.invalidation_bus else {
        return;
    };
    if report.outcome != Outcome::RateLimited {
        return;
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let named = report
        .headers
        .map(|h| RateSignals::from_headers(h, now_ms))
        .unwrap_or_default()
        .or_wait(report.retry_after, now_ms)
        .rate_limited_until_ms(now_ms)
        .is_some();
    if !named {
        return;
    }
    // What the router made of it: the cooling may already run longer.
    let cooling = inner.router.health(report.account_id).map(|h| h.state);
    if let Some(HealthState::Cooling {
        until_ms,
        reason: CoolReason::RateLimited,
    }) = cooling
    {
        bus.publish(&Invalidation::AccountCooling {
            account_id: report.account_id.to_owned(),
            until_ms,
        });
    }
}

/// Why no account of the group can take the request at all.
fn unserved(
    ctx: &RequestContext,
    wire: &dyn Wire,
    candidates: &[crate::router::Candidate],
) -> GatewayError {
    if candidates.is_empty() {
        return GatewayError::Unavailable("no upstream account is bound to this group".into());
    }
    let client = wire.client_api();
    let own = client.protocol();
    // Accounts that may serve this API, any model.
    let serving = |p: Protocol| candidates.iter().any(|c| c.serves(p, client, ""));
    if wire.upstreams().iter().any(|p| serving(*p)) {
        return GatewayError::NotFound(format!(
            "no account of this group serves model `{}`",
            ctx.model
        ));
    }
    let speaks = |p: Protocol| {
        candidates
            .iter()
            .any(|c| c.account.account.enabled && c.account.account.platform.protocol() == p)
    };
    if let Some(other) = wire
        .upstreams()
        .iter()
        .copied()
        .find(|p| *p != own && speaks(*p))
    {
        return GatewayError::NotFound(format!(
            "no account of this group serves this API (it needs an account of platform {}); \
             its {} accounts can serve it through translation once their owner adds \"{}\" \
             to their `serves`",
            platforms(own),
            platforms(other),
            service_name(own),
        ));
    }
    let kinds: Vec<&str> = wire.upstreams().iter().map(|p| platforms(*p)).collect();
    GatewayError::NotFound(format!(
        "no account of this group can serve this API (it needs an account of platform {})",
        kinds.join(", or ")
    ))
}

/// How `serves` names a protocol.
fn service_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Anthropic => "anthropic",
        Protocol::Gemini => "gemini",
        Protocol::Openai => "openai",
    }
}

fn platforms(p: Protocol) -> &'static str {
    match p {
        Protocol::Anthropic => "claude_api, claude_oauth or anthropic_compatible",
        Protocol::Gemini => "gemini",
        Protocol::Openai => "openai_compatible",
    }
}

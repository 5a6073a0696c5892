//! What every protocol's request path shares: authenticate, check the
//! key's policy, admit under member limits, dispatch over the router's
//! plan, relay and settle — once, for Anthropic, Gemini and OpenAI alike.
//!
//! A protocol path only reads its request ([`Inbound`]) and says how it
//! reaches accounts ([`Wire`]): which account protocols may serve it, and
//! for the one chosen, a [`Leg`] that sends each attempt and reads the
//! answer (passed through, or translated into the client's protocol).

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

use super::admission::NotAdmitted;
use super::{admission, dispatch, GatewayBody, GatewayError, Inner, MAX_BODY_BYTES};
use crate::account::{ClientApi, Protocol};
use crate::bounds;
use crate::key::{KeyRecord, KeyRefusal, Service};
use crate::limit::Permit;
use crate::limits::QueueLimits;
use crate::provider::ProviderError;
use crate::router::session::SessionId;
use crate::router::RoutableAccount;
use crate::stream::tap::{ClientStream, StreamTap};
use crate::usage::{Accuracy, Usage};

/// An attempt on its way to an upstream.
pub(super) type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<reqwest::Response, ProviderError>> + Send + 'a>>;

/// How a request is carried to accounts of one upstream protocol, and
/// how their answers come back.
pub(super) trait Leg: Send + Sync {
    /// Sends one attempt to `account`.
    fn send<'a>(
        &'a self,
        inner: &'a Inner,
        ctx: &'a RequestContext,
        account: &'a Arc<RoutableAccount>,
    ) -> SendFuture<'a>;

    /// What a streamed answer goes through on its way to the client.
    fn tap(&self, ctx: &RequestContext) -> Box<dyn StreamTap>;

    /// A whole answer (success or the client's own error): its usage, and
    /// the bytes the client gets.
    fn whole(
        &self,
        ctx: &RequestContext,
        status: StatusCode,
        body: Bytes,
    ) -> (Option<Usage>, Bytes);
}

/// A client protocol's view of one request.
pub(super) trait Wire: Send + Sync {
    /// Account protocols that may serve the request, most fitting first;
    /// the first one with an account serving the model is used.
    fn upstreams(&self) -> &[Protocol];

    /// The leg to accounts of `upstream`; a 400 when the request cannot be
    /// carried there.
    fn leg(&self, upstream: Protocol, ctx: &RequestContext) -> Result<Box<dyn Leg>, GatewayError>;

    /// The stream shape the client reads (for pings and error events sent
    /// before any upstream answers).
    fn client_stream(&self) -> ClientStream;

    /// The API the client speaks: accounts of another protocol serve it
    /// only when their `serves` lists it.
    fn client_api(&self) -> ClientApi {
        match self.client_stream() {
            ClientStream::Anthropic => ClientApi::Messages,
            ClientStream::Gemini => ClientApi::Gemini,
            ClientStream::OpenAiChat => ClientApi::ChatCompletions,
            ClientStream::OpenAiResponses => ClientApi::Responses,
        }
    }
}

/// What a protocol path read from its request.
pub(super) struct Inbound {
    pub model: String,
    /// Where the `model` value sits in the body, when it is there (not in
    /// the URL), for rewriting it in place.
    pub model_span: Option<Range<usize>>,
    /// The output bound the client set, for the limit reservation.
    pub max_tokens: Option<u64>,
    /// The client asked for a stream: its first byte is due sooner.
    pub streamed: bool,
    pub session: Option<SessionId>,
    /// The service the key must allow.
    pub service: Service,
    pub wire: Box<dyn Wire>,
}

/// The protocol path a request came in on.
#[derive(Debug, Clone, Copy)]
pub(super) struct PathKind {
    /// Errors are written in this protocol.
    pub client: Protocol,
    /// Counted against limits and recorded (not so `count_tokens`).
    pub metered: bool,
}

/// An admitted request on its way upstream.
pub(super) struct RequestContext {
    pub key: Arc<KeyRecord>,
    pub client: Protocol,
    pub model: String,
    model_span: Option<Range<usize>>,
    pub metered: bool,
    /// The client asked for a stream.
    pub streamed: bool,
    pub started: Instant,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    /// The conversation, for sticky sessions (scoped to the key when routed).
    pub session: Option<SessionId>,
    /// The member-limit permit, until the relay takes it into the
    /// settlement; released on drop if the request ends without an answer.
    permit: Mutex<Option<Permit>>,
    /// The line the request may wait in when every account is busy.
    pub queue: Option<QueueLimits>,
    /// Upstream accounts tried so far, in order, for the usage record.
    tried: Mutex<Vec<String>>,
}

impl RequestContext {
    /// Counts one more upstream account tried.
    pub(super) fn count_attempt(&self, account_id: &str) {
        self.tried().push(account_id.to_owned());
    }

    fn tried(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.tried.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Upstream accounts tried so far.
    pub(super) fn attempts(&self) -> u32 {
        u32::try_from(self.tried().len()).unwrap_or(u32::MAX)
    }

    /// The accounts tried before the last one: the failover path.
    pub(super) fn failed_over(&self) -> Vec<String> {
        let tried = self.tried();
        tried[..tried.len().saturating_sub(1)].to_vec()
    }

    /// Takes the member-limit permit (once) for settlement.
    pub(super) fn take_permit(&self) -> Option<Permit> {
        self.permit.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The body for `account`: unchanged, or with only `model` replaced
    /// when the account maps it.
    pub(super) fn body_for(&self, account: &RoutableAccount) -> Bytes {
        let upstream = account.account.upstream_model(&self.model);
        let Some(span) = self.model_span.clone().filter(|_| upstream != self.model) else {
            return self.body.clone();
        };
        let replacement = serde_json::Value::from(upstream).to_string();
        let mut out = Vec::with_capacity(self.body.len() + replacement.len());
        out.extend_from_slice(&self.body[..span.start]);
        out.extend_from_slice(replacement.as_bytes());
        out.extend_from_slice(&self.body[span.end..]);
        Bytes::from(out)
    }
}

/// Serves one request of a protocol path: `read` parses the body (given
/// the key, so it can weigh the services the key allows).
pub(super) async fn serve(
    inner: &Arc<Inner>,
    path: PathKind,
    req: http::Request<Bytes>,
    started: Instant,
    read: impl FnOnce(&KeyRecord, &HeaderMap, &Bytes) -> Result<Inbound, GatewayError>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let (parts, body) = req.into_parts();
    if body.len() > MAX_BODY_BYTES {
        return Err(GatewayError::TooLarge);
    }
    let key = inner.authenticate(&parts.headers, &parts.uri).await?;
    let inbound = read(&key, &parts.headers, &body)
        .and_then(|i| {
            // Refused, never stored or forwarded: it lands in every record.
            bounds::model_name(&i.model)
                .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
            Ok(i)
        })
        .and_then(|i| check_policy(&key, &parts.headers, &i).map(|()| i));
    let inbound = match inbound {
        Ok(i) => i,
        Err(e) => {
            if path.metered {
                inner
                    .record_failure(&key, path.client, failed(&e, None, "", 0), started)
                    .await;
            }
            return Err(e);
        }
    };
    let admitted = Admitted {
        key,
        inbound,
        parts,
        body,
        permit: None,
        queue: None,
        started,
    };
    if !path.metered {
        return proceed(inner, path, admitted).await;
    }
    let a = &admitted;
    let reserve =
        admission::reservation(inner, &a.inbound.model, a.body.len(), a.inbound.max_tokens);
    let (permit, queue) = match inner.admit_limits(&a.key, reserve).await {
        Ok(admitted) => admitted,
        // Only a concurrency slot is missing and the limits let it wait: a
        // stream waits with its head sent, kept alive by pings.
        Err(NotAdmitted {
            line: Some(line), ..
        }) if admitted.inbound.streamed => {
            return Ok(super::waiting::stream(
                inner.clone(),
                path,
                admitted,
                reserve,
                line,
            ))
        }
        Err(NotAdmitted {
            line: Some(line), ..
        }) => {
            let queue = Some(line.1);
            match inner.wait_for_limits(&admitted.key, reserve, line).await {
                Ok(permit) => (permit, queue),
                Err(e) => return Err(refuse(inner, path, &admitted, e).await),
            }
        }
        Err(NotAdmitted { error, .. }) => return Err(refuse(inner, path, &admitted, error).await),
    };
    let admitted = Admitted {
        permit: Some(permit),
        queue,
        ..admitted
    };
    proceed(inner, path, admitted).await
}

/// A request read, checked and (when metered) admitted.
pub(super) struct Admitted {
    pub key: Arc<KeyRecord>,
    pub inbound: Inbound,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub permit: Option<Permit>,
    /// The line the request may wait in when every account is busy.
    pub queue: Option<QueueLimits>,
    pub started: Instant,
}

/// Records a request the limits refused and returns the refusal.
pub(super) async fn refuse(
    inner: &Arc<Inner>,
    path: PathKind,
    a: &Admitted,
    e: GatewayError,
) -> GatewayError {
    let f = failed(&e, None, &a.inbound.model, 0);
    inner
        .record_failure(&a.key, path.client, f, a.started)
        .await;
    e
}

/// Dispatches an admitted request and records it when it got no answer.
pub(super) async fn proceed(
    inner: &Arc<Inner>,
    path: PathKind,
    a: Admitted,
) -> Result<Response<GatewayBody>, GatewayError> {
    let ctx = RequestContext {
        key: a.key,
        client: path.client,
        model: a.inbound.model,
        model_span: a.inbound.model_span,
        metered: path.metered,
        streamed: a.inbound.streamed,
        started: a.started,
        query: a.parts.uri.query().map(str::to_owned),
        headers: a.parts.headers,
        body: a.body,
        session: a.inbound.session,
        permit: Mutex::new(a.permit),
        queue: a.queue,
        tried: Mutex::new(Vec::new()),
    };
    let result = dispatch::dispatch(inner, &ctx, &*a.inbound.wire).await;
    let out = match result {
        Ok(resp) => Ok(resp),
        Err((e, account_id)) => {
            if path.metered {
                let mut f = failed(&e, account_id, &ctx.model, ctx.attempts());
                f.failed_over = ctx.failed_over();
                inner
                    .record_failure(&ctx.key, path.client, f, ctx.started)
                    .await;
            }
            Err(e)
        }
    };
    // A permit the request did not hand on is released here: the line
    // may move.
    drop(ctx);
    inner.waiting.freed();
    out
}

/// The key's own policy: enabled, not expired, the service, the model and
/// the client allowed.
fn check_policy(key: &KeyRecord, headers: &HeaderMap, i: &Inbound) -> Result<(), GatewayError> {
    let user_agent = client_name(headers);
    key.check(
        chrono::Utc::now(),
        i.service,
        Some(&i.model),
        user_agent.as_deref(),
    )
    .map_err(|refusal| match refusal {
        KeyRefusal::Disabled | KeyRefusal::Expired(_) => {
            GatewayError::Authentication(refusal.to_string())
        }
        _ => GatewayError::Permission(refusal.to_string()),
    })
}

/// The client's `User-Agent`, bounded (see [`crate::bounds`]): what the
/// key's allowed-clients globs match and a refusal names.
pub(super) fn client_name(headers: &HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| bounds::clip(ua, bounds::MAX_USER_AGENT_LEN))
}

/// The service whose accounts speak `protocol`.
pub(super) fn service_of(protocol: Protocol) -> Service {
    match protocol {
        Protocol::Anthropic => Service::Claude,
        Protocol::Gemini => Service::Gemini,
        Protocol::Openai => Service::Openai,
    }
}

/// A request that ended in a gateway error, for the usage record.
pub(super) struct Failed<'a> {
    pub error: &'a GatewayError,
    pub account_id: Option<String>,
    pub model: &'a str,
    pub attempts: u32,
    pub failed_over: Vec<String>,
}

fn failed<'a>(
    error: &'a GatewayError,
    account_id: Option<String>,
    model: &'a str,
    attempts: u32,
) -> Failed<'a> {
    Failed {
        error,
        account_id,
        model,
        attempts,
        failed_over: Vec::new(),
    }
}

impl Inner {
    /// Records a request that got no upstream answer.
    pub(super) async fn record_failure(
        &self,
        key: &KeyRecord,
        client: Protocol,
        failed: Failed<'_>,
        started: Instant,
    ) {
        let mut record = self.usage_record(
            key,
            failed.model,
            failed.model,
            failed.account_id,
            Usage::default(),
            failed.error.status().as_u16(),
            Accuracy::Exact,
            started,
        );
        record.refusal = failed.error.refusal();
        record.attempts = failed.attempts;
        record.failed_over = failed.failed_over;
        super::telemetry::settled(client, &record);
        self.queue_record(record).await;
    }
}

/// The client's headers minus everything of its own protocol: what a
/// translated request carries upstream (its User-Agent and the hop mark).
pub(super) fn translated_headers(client: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    for name in [http::header::USER_AGENT, super::hops::HOP_HEADER] {
        if let Some(value) = client.get(&name) {
            h.insert(name, value.clone());
        }
    }
    h
}

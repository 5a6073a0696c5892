//! The Anthropic Messages request path: admit, route, try candidates.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{relay, GatewayBody, GatewayError, Inner, MAX_BODY_BYTES};
use crate::account::Protocol;
use crate::key::{KeyRecord, KeyRefusal, Service};
use crate::provider::anthropic::{MessagesEndpoint, MessagesRequest};
use crate::provider::{retry_after, ResponseClass};
use crate::router::{Candidate, Outcome, RouteRequest};
use crate::usage::{Accuracy, Usage};

/// The two top-level fields the gateway reads; everything else passes
/// through untouched.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
}

/// An admitted request on its way upstream.
pub(super) struct RequestContext {
    pub key: Arc<KeyRecord>,
    pub model: String,
    /// Where the `model` value sits in `body`, for rewriting it in place.
    model_span: Range<usize>,
    pub endpoint: MessagesEndpoint,
    pub started: Instant,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
}

impl RequestContext {
    /// The body for `candidate`: unchanged, or with only `model` replaced
    /// when the account maps it.
    fn body_for(&self, candidate: &Candidate) -> Bytes {
        let upstream = candidate.account.account.upstream_model(&self.model);
        if upstream == self.model {
            return self.body.clone();
        }
        let replacement = serde_json::Value::from(upstream).to_string();
        let mut out = Vec::with_capacity(self.body.len() + replacement.len());
        out.extend_from_slice(&self.body[..self.model_span.start]);
        out.extend_from_slice(replacement.as_bytes());
        out.extend_from_slice(&self.body[self.model_span.end..]);
        Bytes::from(out)
    }
}

pub(super) async fn serve(
    inner: &Arc<Inner>,
    endpoint: MessagesEndpoint,
    req: http::Request<Bytes>,
    started: Instant,
) -> Result<Response<GatewayBody>, GatewayError> {
    let (parts, body) = req.into_parts();
    if body.len() > MAX_BODY_BYTES {
        return Err(GatewayError::TooLarge);
    }
    let key = inner.authenticate(&parts.headers, &parts.uri).await?;
    let admitted = admit(&key, &parts.headers, &body);
    let (model, model_span) = match admitted {
        Ok(m) => m,
        Err(e) => {
            if endpoint == MessagesEndpoint::Messages {
                let failed = Failed {
                    error: &e,
                    account_id: None,
                    model: "",
                };
                inner.record_failure(&key, failed, started).await;
            }
            return Err(e);
        }
    };
    let ctx = RequestContext {
        key,
        model,
        model_span,
        endpoint,
        started,
        headers: parts.headers,
        query: parts.uri.query().map(str::to_owned),
        body,
    };
    match dispatch(inner, &ctx).await {
        Ok(resp) => Ok(resp),
        Err((e, account_id)) => {
            if endpoint == MessagesEndpoint::Messages {
                let failed = Failed {
                    error: &e,
                    account_id,
                    model: &ctx.model,
                };
                inner.record_failure(&ctx.key, failed, started).await;
            }
            Err(e)
        }
    }
}

/// Parses what routing needs and checks the key's own policy.
fn admit(
    key: &KeyRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Range<usize>), GatewayError> {
    let peek: Peek<'_> = serde_json::from_slice(body).map_err(|e| {
        GatewayError::InvalidRequest(format!("request body is not valid JSON: {e}"))
    })?;
    let raw = peek
        .model
        .ok_or_else(|| GatewayError::InvalidRequest("model: field required".into()))?;
    let model: String = serde_json::from_str(raw.get())
        .map_err(|_| GatewayError::InvalidRequest("model: must be a string".into()))?;
    // The raw value borrows from `body`; its offset is where `model` sits.
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    let span = start..start + raw.get().len();
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    key.check(
        chrono::Utc::now(),
        Service::Claude,
        Some(&model),
        user_agent,
    )
    .map_err(|refusal| match refusal {
        KeyRefusal::Disabled | KeyRefusal::Expired(_) => {
            GatewayError::Authentication(refusal.to_string())
        }
        _ => GatewayError::Permission(refusal.to_string()),
    })?;
    Ok((model, span))
}

/// A request that ended in a gateway error, for the usage record.
pub(super) struct Failed<'a> {
    pub error: &'a GatewayError,
    pub account_id: Option<String>,
    pub model: &'a str,
}

/// Why the last attempt failed, kept to pick the most telling answer.
struct AttemptFailure {
    class: Option<ResponseClass>,
    message: String,
}

/// Tries the planned candidates until one answers. Returns the account id
/// of the last attempt along with an error.
async fn dispatch(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
) -> Result<Response<GatewayBody>, (GatewayError, Option<String>)> {
    let table = inner
        .route_table(&ctx.key.group_id)
        .await
        .map_err(|e| (e, None))?;
    let request = RouteRequest {
        group_id: &ctx.key.group_id,
        key_id: &ctx.key.id,
        protocol: Protocol::Anthropic,
        model: &ctx.model,
    };
    let plan = inner.router.plan(&request, &table.candidates);
    if plan.is_empty() {
        let e = if table.candidates.is_empty() {
            GatewayError::Unavailable("no upstream account is bound to this group".into())
        } else {
            GatewayError::NotFound(format!(
                "no account of this group serves model `{}`",
                ctx.model
            ))
        };
        return Err((e, None));
    }

    let mut last: Option<AttemptFailure> = None;
    let mut last_account = None;
    let mut soonest_retry: Option<Duration> = None;
    let mut saturated = false;
    let mut attempts = 0;
    for candidate in &plan {
        if attempts >= inner.config.max_attempts {
            break;
        }
        let Some(lease) = candidate.account.try_lease() else {
            saturated = true;
            continue;
        };
        attempts += 1;
        let account_id = candidate.account.account.id.clone();
        last_account = Some(account_id.clone());
        let attempt_started = Instant::now();
        let call = tower::ServiceExt::oneshot(
            inner.anthropic.clone(),
            MessagesRequest {
                account: candidate.account.clone(),
                endpoint: ctx.endpoint,
                query: ctx.query.clone(),
                client_headers: ctx.headers.clone(),
                body: ctx.body_for(candidate),
            },
        );
        let resp = match tokio::time::timeout(inner.config.first_byte_timeout, call).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                tracing::warn!(account_id, error = %e, "upstream attempt failed");
                inner.router.report(
                    &account_id,
                    &Outcome::Failed {
                        reason: e.to_string(),
                    },
                );
                last = Some(AttemptFailure {
                    class: None,
                    message: e.to_string(),
                });
                continue;
            }
            Err(_) => {
                let reason = "the upstream did not answer in time".to_owned();
                tracing::warn!(account_id, "upstream attempt timed out");
                inner.router.report(
                    &account_id,
                    &Outcome::Failed {
                        reason: reason.clone(),
                    },
                );
                last = Some(AttemptFailure {
                    class: None,
                    message: reason,
                });
                continue;
            }
        };
        let class = ResponseClass::of(resp.status());
        if class.fails_over() {
            let status = resp.status().as_u16();
            let wait = retry_after(resp.headers());
            let text = relay::read_bounded(resp, 8192).await;
            let message = relay::error_message(&text);
            tracing::warn!(account_id, status, %message, "upstream refused; trying the next account");
            let outcome = match class {
                ResponseClass::RateLimited => {
                    soonest_retry = match (soonest_retry, wait) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    Outcome::RateLimited { retry_after: wait }
                }
                ResponseClass::Overloaded => Outcome::Overloaded,
                ResponseClass::CredentialsRejected => Outcome::CredentialsRejected { status },
                _ => Outcome::Failed {
                    reason: format!("status {status}"),
                },
            };
            inner.router.report(&account_id, &outcome);
            last = Some(AttemptFailure {
                class: Some(class),
                message,
            });
            continue;
        }
        if class == ResponseClass::Success {
            let latency = attempt_started.elapsed();
            inner
                .router
                .report(&account_id, &Outcome::Success { latency });
        }
        return Ok(relay::respond(inner, ctx, candidate, lease, resp).await);
    }

    let e = match last {
        Some(AttemptFailure {
            class: Some(ResponseClass::RateLimited),
            message,
        }) => GatewayError::RateLimited {
            message: format!("every account of this group is rate limited: {message}"),
            retry_after: soonest_retry,
        },
        Some(AttemptFailure {
            class: Some(ResponseClass::Overloaded),
            message,
        }) => GatewayError::Overloaded(format!("upstream overloaded: {message}")),
        Some(AttemptFailure {
            class: Some(ResponseClass::CredentialsRejected),
            ..
        }) => GatewayError::BadUpstream(
            "the upstream account's credentials were refused; ask the group admin to check it"
                .into(),
        ),
        Some(AttemptFailure { message, .. }) => {
            GatewayError::Unavailable(format!("upstream unavailable: {message}"))
        }
        None if saturated => GatewayError::Overloaded(
            "every account of this group is at its concurrency limit".into(),
        ),
        None => GatewayError::Unavailable("no upstream account could be tried".into()),
    };
    Err((e, last_account))
}

impl Inner {
    /// Records a request that got no upstream answer.
    pub(super) async fn record_failure(
        &self,
        key: &KeyRecord,
        failed: Failed<'_>,
        started: Instant,
    ) {
        self.record(
            key,
            failed.model,
            failed.model,
            failed.account_id,
            Usage::default(),
            failed.error.status().as_u16(),
            Accuracy::Exact,
            started,
        )
        .await;
    }
}

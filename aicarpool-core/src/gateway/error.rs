//! Data-plane errors, written in the client's protocol.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::{BodyError, GatewayBody};
use crate::account::Protocol;
use crate::usage::RefusalReason;

/// Names the gateway's own refusals (see [`RefusalReason`]), so a client or
/// script can tell a member limit from an upstream's 429.
pub const REFUSAL_HEADER: &str = "x-aicarpool-refusal";

/// Why the gateway answers with an error instead of an upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// 401: no key, a malformed or unknown key, a disabled or expired key.
    #[error("{0}")]
    Authentication(String),
    /// 403: the key may not do this (service, model, client).
    #[error("{0}")]
    Permission(String),
    /// 400: malformed JSON or a missing field.
    #[error("{0}")]
    InvalidRequest(String),
    /// 404: unknown path, or no account serves the model.
    #[error("{0}")]
    NotFound(String),
    /// 413: body over the limit.
    #[error("request body is larger than {} MiB", super::MAX_BODY_BYTES >> 20)]
    TooLarge,
    /// 429: every candidate is rate limited (or a member limit is hit).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
        /// Set when the gateway's own limit refused, `None` when the
        /// upstream accounts did.
        refusal: Option<RefusalReason>,
    },
    /// 529: every candidate is overloaded or saturated.
    #[error("{0}")]
    Overloaded(String),
    /// 503: no account can serve (none bound, or all down).
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `retry-after`: the budget of buffered request bodies is
    /// spent (see [`GatewayConfig::max_buffered_body_bytes`](super::GatewayConfig)).
    #[error("the gateway is receiving too many large requests; retry in a moment")]
    Busy,
    /// 502: the upstream answered in a way that cannot be passed on.
    #[error("{0}")]
    BadUpstream(String),
    /// 508: the request already passed through this gateway, or through
    /// too many (see [`hops`](super::hops)).
    #[error("{0}")]
    LoopDetected(String),
    /// 500: the gateway itself failed (storage).
    #[error("{0}")]
    Internal(String),
}

impl GatewayError {
    /// Why the gateway refused, when it was its own limit.
    pub fn refusal(&self) -> Option<RefusalReason> {
        match self {
            GatewayError::RateLimited { refusal, .. } => *refusal,
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Authentication(_) => StatusCode::UNAUTHORIZED,
            GatewayError::Permission(_) => StatusCode::FORBIDDEN,
            GatewayError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Overloaded(_) => overloaded_status(),
            GatewayError::Unavailable(_) | GatewayError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::BadUpstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::LoopDetected(_) => StatusCode::LOOP_DETECTED,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error.type` of the Anthropic error shape.
    fn anthropic_type(&self) -> &'static str {
        match self {
            GatewayError::Authentication(_) => "authentication_error",
            GatewayError::Permission(_) => "permission_error",
            GatewayError::InvalidRequest(_) => "invalid_request_error",
            GatewayError::NotFound(_) => "not_found_error",
            GatewayError::TooLarge => "request_too_large",
            GatewayError::RateLimited { .. } => "rate_limit_error",
            GatewayError::Overloaded(_) | GatewayError::Unavailable(_) | GatewayError::Busy => {
                "overloaded_error"
            }
            GatewayError::BadUpstream(_)
            | GatewayError::LoopDetected(_)
            | GatewayError::Internal(_) => "api_error",
        }
    }

    /// The error as an HTTP response in `protocol`'s shape.
    pub fn into_response(self, protocol: Protocol) -> Response<GatewayBody> {
        let status = self.status();
        let body = match protocol {
            Protocol::Anthropic => serde_json::json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.to_string()},
            }),
            Protocol::Gemini => serde_json::json!({
                "error": {"code": status.as_u16(), "message": self.to_string(), "status": gemini_status(status)},
            }),
            Protocol::Openai => serde_json::json!({
                "error": {"message": self.to_string(), "type": self.anthropic_type(), "code": status.as_u16()},
            }),
        };
        let mut resp = Response::new(full(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let retry_after = match &self {
            GatewayError::RateLimited {
                retry_after: Some(wait),
                ..
            } => Some(*wait),
            // Bodies in flight finish in moments.
            GatewayError::Busy => Some(Duration::from_secs(1)),
            _ => None,
        };
        if let Some(reason) = self.refusal() {
            resp.headers_mut()
                .insert(REFUSAL_HEADER, HeaderValue::from_static(reason.as_str()));
        }
        if let Some(wait) = retry_after {
            // Round up: retrying a moment early only earns another refusal.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }

    /// The SSE `error` event that ends a stream already under way.
    pub fn anthropic_event(&self) -> Bytes {
        let data = serde_json::json!({
            "type": "error",
            "error": {"type": self.anthropic_type(), "message": self.to_string()},
        });
        Bytes::from(format!("event: error\ndata: {data}\n\n"))
    }
}

/// Anthropic's "overloaded" status, which Claude Code retries by itself.
pub fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

fn gemini_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 | 529 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// A whole body.
pub(crate) fn full(bytes: Bytes) -> GatewayBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl From<std::convert::Infallible> for BodyError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn anthropic_shape_and_retry_after() {
        let e = GatewayError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_millis(2500)),
            refusal: Some(RefusalReason::Quota),
        };
        let resp = e.into_response(Protocol::Anthropic);
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        assert_eq!(resp.headers()[REFUSAL_HEADER], "quota");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[test]
    fn an_upstream_429_names_no_refusal_of_the_gateway() {
        let e = GatewayError::RateLimited {
            message: "every account is rate limited".into(),
            retry_after: None,
            refusal: None,
        };
        assert!(e
            .into_response(Protocol::Openai)
            .headers()
            .get(REFUSAL_HEADER)
            .is_none());
    }

    #[test]
    fn overloaded_is_529() {
        assert_eq!(GatewayError::Overloaded("x".into()).status().as_u16(), 529);
    }
}

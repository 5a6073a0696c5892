//! The last line of defence against a panic: the client still gets an
//! answer, a 500 in its own protocol's shape, instead of a closed
//! connection.
//!
//! Panics on input are bugs and the fuzzed parsers should have none; this
//! layer makes one that slips through cost a single request, not the
//! client's view of what went wrong. `CatchPanicLayer` from tower-http
//! catches; [`answer_in_protocol`] knows the request's path and so writes
//! the refusal a data-plane client (Anthropic, OpenAI, Gemini) or the
//! management API expects.

use std::any::Any;

use aicarpool_core::gateway::{protocol_of, GatewayError};
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::dataplane;
use crate::error::ApiError;

/// Marks the answer [`caught`] made, for [`answer_in_protocol`] to shape.
#[derive(Debug, Clone, Copy)]
struct PanicCaught;

/// `CatchPanicLayer`'s answer: a bare 500 with the marker. The panic's
/// message goes to the log only: it may hold input.
pub fn caught(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    resp.extensions_mut().insert(PanicCaught);
    resp
}

/// Rewrites a caught panic's answer in the protocol of the request's path.
pub async fn answer_in_protocol(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    if resp.extensions().get::<PanicCaught>().is_none() {
        return resp;
    }
    const MESSAGE: &str = "the server failed while serving this request";
    if dataplane::is_data_plane(&path) {
        GatewayError::Internal(MESSAGE.into())
            .into_response(protocol_of(&path))
            .map(Body::new)
    } else {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", MESSAGE).into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::routing::any;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    /// A stand-in for a bug on input.
    async fn panicking() -> &'static str {
        panic!("boom on input")
    }

    fn app() -> Router {
        Router::new()
            .route("/{*rest}", any(panicking))
            .layer(CatchPanicLayer::custom(caught))
            .layer(axum::middleware::from_fn(answer_in_protocol))
    }

    async fn call(path: &str) -> (StatusCode, serde_json::Value) {
        let req = http::Request::post(path).body(Body::empty()).unwrap();
        let resp = app().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn each_protocol_gets_its_own_shape() {
        let (st, v) = call("/v1/messages").await;
        assert_eq!(st, 500);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");

        let (st, v) = call("/api/ai-proxy/v1/chat/completions").await;
        assert_eq!(st, 500);
        assert_eq!(v["error"]["code"], 500);
        assert!(v["error"]["message"].is_string());

        let (st, v) = call("/api/ai-proxy/v1beta/models/gemini-2.5-pro:generateContent").await;
        assert_eq!(st, 500);
        assert_eq!(v["error"]["status"], "INTERNAL");

        let (st, v) = call("/api/groups").await;
        assert_eq!(st, 500);
        assert_eq!(v["error"]["code"], "internal");
        // The panic's text (possibly input) never reaches the client.
        assert!(!v.to_string().contains("boom"));
    }
}

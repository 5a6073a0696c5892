//! What an upstream answer means for the account, from its status and —
//! where the status alone cannot tell — the start of its body.
//!
//! Gemini names a 429's wait in the body (`RetryInfo.retryDelay`), not in
//! `retry-after`, and refuses a bad API key with a 400 that is the
//! account's fault, not the client's. Error bodies are small, so reading
//! the first few KiB before deciding costs nothing on the success path,
//! which is never read here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::StatusCode;
use http_body_util::BodyExt;

use super::failover;
use crate::account::Protocol;
use crate::provider::{gemini, ResponseClass};
use crate::router::Outcome;

/// Bytes of an error body read at most before deciding; Google's error
/// bodies are well under 1 KiB, and the client's message needs no more.
const PEEK_BYTES: usize = 8192;

/// An upstream answer, classified.
pub(super) struct Answer {
    /// The response, whole: a body that was read is put back in front.
    pub resp: reqwest::Response,
    pub class: ResponseClass,
    /// The start of the body, for error answers (empty otherwise).
    pub head: Bytes,
    /// A wait the body names (Gemini's `RetryInfo`).
    pub retry_after: Option<Duration>,
    /// Why the body says the account's key is refused.
    key_refused: Option<&'static str>,
}

impl Answer {
    /// Classifies `resp` from an account of `protocol`, reading the start
    /// of an error body for at most `patience`.
    pub(super) async fn read(
        protocol: Protocol,
        resp: reqwest::Response,
        patience: Duration,
    ) -> Self {
        let status = resp.status();
        let class = ResponseClass::of(status);
        if !class.fails_over() && !peeks_client_error(protocol, status) {
            return Self::plain(resp, class);
        }
        let (head, resp) = peek(resp, PEEK_BYTES, patience).await;
        let mut answer = Self {
            head,
            ..Self::plain(resp, class)
        };
        if protocol == Protocol::Gemini {
            answer.read_gemini(status);
        }
        answer
    }

    fn plain(resp: reqwest::Response, class: ResponseClass) -> Self {
        Self {
            resp,
            class,
            head: Bytes::new(),
            retry_after: None,
            key_refused: None,
        }
    }

    fn read_gemini(&mut self, status: StatusCode) {
        match status {
            StatusCode::TOO_MANY_REQUESTS => self.retry_after = gemini::retry_delay(&self.head),
            StatusCode::BAD_REQUEST => {
                self.key_refused = gemini::key_refusal(&self.head);
                if self.key_refused.is_some() {
                    // Every member's request would fail the same way: fail
                    // over and bench the account, as for a 401.
                    self.class = ResponseClass::CredentialsRejected;
                }
            }
            _ => {}
        }
    }

    /// What the answer means for the account.
    pub(super) fn outcome(&self, latency: Duration) -> Outcome {
        let status = self.resp.status();
        match self.key_refused {
            Some(reason) => Outcome::CredentialsRejected {
                status: status.as_u16(),
                reason: reason.to_owned(),
            },
            None => failover::outcome(self.class, status, latency),
        }
    }
}

/// Client errors whose body may say they are the account's fault.
fn peeks_client_error(protocol: Protocol, status: StatusCode) -> bool {
    protocol == Protocol::Gemini && status == StatusCode::BAD_REQUEST
}

/// Reads up to about `limit` bytes of the body, waiting at most
/// `patience`, and gives the response back whole: the bytes read, then the
/// rest as it comes (a 400 that is the client's own still passes through
/// byte for byte, however long).
async fn peek(
    resp: reqwest::Response,
    limit: usize,
    patience: Duration,
) -> (Bytes, reqwest::Response) {
    let (parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
    let mut rest = body.into_data_stream().fuse();
    let mut read = Vec::new();
    let mut head = BytesMut::new();
    let until = tokio::time::Instant::now() + patience;
    while head.len() < limit {
        match tokio::time::timeout_at(until, rest.next()).await {
            Ok(Some(Ok(chunk))) => {
                head.extend_from_slice(&chunk);
                read.push(Ok(chunk));
            }
            // The error is handed on to whoever reads the body next.
            Ok(Some(Err(e))) => {
                read.push(Err(e));
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let body = reqwest::Body::wrap_stream(futures::stream::iter(read).chain(rest));
    let resp = reqwest::Response::from(http::Response::from_parts(parts, body));
    (head.freeze(), resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let resp = http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        reqwest::Response::from(resp)
    }

    const KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
    const EXHAUSTED: &str = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
    const PATIENCE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_gemini_invalid_key_is_the_accounts_fault() {
        let a = Answer::read(Protocol::Gemini, upstream(400, KEY_INVALID), PATIENCE).await;
        assert_eq!(a.class, ResponseClass::CredentialsRejected);
        assert_eq!(
            a.outcome(Duration::ZERO),
            Outcome::CredentialsRejected {
                status: 400,
                reason: "the Gemini API key is invalid".into()
            }
        );
        // The same body from another protocol's upstream means nothing.
        let a = Answer::read(Protocol::Openai, upstream(400, KEY_INVALID), PATIENCE).await;
        assert_eq!(a.class, ResponseClass::ClientError);
        assert!(
            a.head.is_empty(),
            "client errors of other protocols are not read"
        );
    }

    #[tokio::test]
    async fn the_clients_own_400_passes_on_whole() {
        let body = r#"{"error":{"code":400,"message":"contents is not specified","status":"INVALID_ARGUMENT"}}"#;
        let a = Answer::read(Protocol::Gemini, upstream(400, body), PATIENCE).await;
        assert_eq!(a.class, ResponseClass::ClientError);
        assert_eq!(
            a.outcome(Duration::ZERO),
            Outcome::ClientError { status: 400 }
        );
        assert_eq!(a.resp.headers()["content-type"], "application/json");
        assert_eq!(a.resp.bytes().await.unwrap(), body.as_bytes());
    }

    #[tokio::test]
    async fn a_long_body_is_read_only_in_part_and_kept_whole() {
        let chunks = (0..4u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + i; 10])));
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let (head, resp) = peek(upstream(400, body), 10, PATIENCE).await;
        assert_eq!(head.as_ref(), b"aaaaaaaaaa", "one chunk was enough");
        let whole = resp.bytes().await.unwrap();
        assert_eq!(whole.len(), 40);
        assert!(whole.starts_with(b"aaaaaaaaaabbbbbbbbbb"));
    }

    #[tokio::test]
    async fn a_gemini_429_names_its_wait() {
        let a = Answer::read(Protocol::Gemini, upstream(429, EXHAUSTED), PATIENCE).await;
        assert_eq!(a.class, ResponseClass::RateLimited);
        assert_eq!(a.retry_after, Some(Duration::from_secs(37)));
        assert_eq!(a.outcome(Duration::ZERO), Outcome::RateLimited);
        assert!(a.head.starts_with(b"{\"error\""));
    }
}

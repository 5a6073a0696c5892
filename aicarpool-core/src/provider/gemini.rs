//! The Gemini API (`generativelanguage.googleapis.com` and compatible).
//!
//! The model and the method are in the path
//! (`/{v1beta|v1}/models/{model}:{method}`), the account's key goes in
//! `x-goog-api-key`, and the body passes through as the client sent it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde::Deserialize;

use super::proxy::HttpClients;
use super::{forwardable_request_headers, post_json, ProviderError};
use crate::router::RoutableAccount;

/// Default base URL of Gemini accounts.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The header Gemini reads the API key from.
pub const KEY_HEADER: &str = "x-goog-api-key";

/// The `generateContent` family of methods the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeminiMethod {
    GenerateContent,
    StreamGenerateContent,
    CountTokens,
}

impl GeminiMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "generateContent" => Some(GeminiMethod::GenerateContent),
            "streamGenerateContent" => Some(GeminiMethod::StreamGenerateContent),
            "countTokens" => Some(GeminiMethod::CountTokens),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GeminiMethod::GenerateContent => "generateContent",
            GeminiMethod::StreamGenerateContent => "streamGenerateContent",
            GeminiMethod::CountTokens => "countTokens",
        }
    }
}

/// One attempt on one account.
#[derive(Debug)]
pub struct GeminiRequest {
    pub account: Arc<RoutableAccount>,
    /// `v1beta` or `v1`, as the client called it.
    pub version: &'static str,
    /// The model as the account knows it (mapped).
    pub model: String,
    pub method: GeminiMethod,
    /// The client's query string; its `key` is never forwarded.
    pub query: Option<String>,
    pub client_headers: HeaderMap,
    pub body: Bytes,
}

/// Sends Gemini requests upstream through each account's proxy.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    clients: Arc<HttpClients>,
}

impl GeminiProvider {
    pub fn new(clients: Arc<HttpClients>) -> Self {
        Self { clients }
    }

    /// The upstream URL. Streams always ask for `alt=sse`; the member's
    /// `key` parameter is dropped, every other parameter kept.
    pub fn url(
        account: &RoutableAccount,
        version: &str,
        model: &str,
        method: GeminiMethod,
        query: Option<&str>,
    ) -> String {
        let mut params: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && *p != "key" && !p.starts_with("key="))
            .collect();
        if method == GeminiMethod::StreamGenerateContent
            && !params.iter().any(|p| p.starts_with("alt="))
        {
            params.push("alt=sse");
        }
        let mut url = format!(
            "{}/{version}/models/{model}:{}",
            account.base_url,
            method.as_str()
        );
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        url
    }

    /// The client's forwardable headers with the account's key.
    pub fn headers(
        account: &RoutableAccount,
        client: &HeaderMap,
    ) -> Result<HeaderMap, ProviderError> {
        let key = account
            .credentials
            .bearer_or_key()
            .ok_or(ProviderError::NoCredentials)?;
        let key = ProviderError::upstream_secret(key)?;
        let mut h = forwardable_request_headers(client);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut value = HeaderValue::from_str(key).map_err(|_| ProviderError::NoCredentials)?;
        value.set_sensitive(true);
        h.insert(KEY_HEADER, value);
        Ok(h)
    }

    async fn send(self, req: GeminiRequest) -> Result<reqwest::Response, ProviderError> {
        let url = Self::url(
            &req.account,
            req.version,
            &req.model,
            req.method,
            req.query.as_deref(),
        );
        let http = self
            .clients
            .client_for(req.account.proxy_url().as_deref(), &url)?;
        let headers = Self::headers(&req.account, &req.client_headers)?;
        post_json(&http, url, headers, req.body).await
    }
}

impl tower::Service<GeminiRequest> for GeminiProvider {
    type Response = reqwest::Response;
    type Error = ProviderError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, ProviderError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: GeminiRequest) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

/// The part of a Gemini error body the gateway reads: the `google.rpc`
/// details Google attaches to `error.details`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorStatus,
}

#[derive(Deserialize)]
struct ErrorStatus {
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

/// One detail, by its fields rather than its `@type`: `reason` is only in
/// `ErrorInfo` and `retryDelay` only in `RetryInfo`, so a relay that drops
/// the type still reads right.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    retry_delay: Option<String>,
}

fn error_details(body: &[u8]) -> Vec<ErrorDetail> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error.details)
        .unwrap_or_default()
}

/// The wait a Gemini 429 names in its body (`RetryInfo.retryDelay`):
/// Gemini seldom sends `retry-after`, so this is what says when the quota
/// is back.
pub fn retry_delay(body: &[u8]) -> Option<Duration> {
    error_details(body)
        .iter()
        .find_map(|d| d.retry_delay.as_deref().and_then(parse_duration))
}

/// Why a Gemini 400 is the account's fault, not the client's: Google
/// refuses a bad or expired API key with 400 `INVALID_ARGUMENT` and the
/// reason in an `ErrorInfo` detail. `None` for every other 400.
pub fn key_refusal(body: &[u8]) -> Option<&'static str> {
    error_details(body)
        .iter()
        .find_map(|d| match d.reason.as_deref()? {
            "API_KEY_INVALID" => Some("the Gemini API key is invalid"),
            "API_KEY_EXPIRED" => Some("the Gemini API key has expired"),
            _ => None,
        })
}

/// The longest wait a protobuf `Duration` can hold (10,000 years). Longer
/// values are clamped, not refused: they still mean "not soon", and the
/// router caps every cooling far below this anyway.
const MAX_DURATION_SECS: u64 = 315_576_000_000;

/// A protobuf `Duration` in its JSON form: seconds with up to nine
/// fraction digits and an `s` suffix (`"37s"`, `"1.5s"`). Negative or
/// malformed values are `None`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let number = s.trim().strip_suffix('s')?;
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        Some(_) => return None,
        None => (number, ""),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    // Only digits: a value too long for u64 is simply huge.
    let secs = whole.parse::<u64>().unwrap_or(u64::MAX);
    if secs >= MAX_DURATION_SECS {
        return Some(Duration::from_secs(MAX_DURATION_SECS));
    }
    // Right-pad to nanoseconds: "5" → 500_000_000.
    let nanos = format!("{fraction:0<9}").parse::<u32>().ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::test_support::routable;

    #[test]
    fn url_drops_the_member_key_and_asks_for_sse() {
        let a = routable(crate::account::Platform::Gemini, None);
        assert_eq!(
            GeminiProvider::url(
                &a,
                "v1beta",
                "gemini-2.5-flash",
                GeminiMethod::StreamGenerateContent,
                Some("key=aicp_x&alt=sse")
            ),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            GeminiProvider::url(&a, "v1", "m", GeminiMethod::StreamGenerateContent, None),
            "https://generativelanguage.googleapis.com/v1/models/m:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            GeminiProvider::url(&a, "v1", "m", GeminiMethod::CountTokens, Some("key=k")),
            "https://generativelanguage.googleapis.com/v1/models/m:countTokens"
        );
    }

    #[test]
    fn the_account_key_replaces_the_members() {
        let a = routable(crate::account::Platform::Gemini, None);
        let mut client = HeaderMap::new();
        client.insert(KEY_HEADER, "aicp_member".parse().unwrap());
        client.insert("x-goog-api-client", "genai".parse().unwrap());
        let h = GeminiProvider::headers(&a, &client).unwrap();
        assert_eq!(h[KEY_HEADER], "upstream-secret");
        assert!(h[KEY_HEADER].is_sensitive());
        assert_eq!(h["x-goog-api-client"], "genai");
        assert!(h.get("authorization").is_none());
    }

    #[test]
    fn protobuf_durations() {
        assert_eq!(parse_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25s"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("0.000000001s"),
            Some(Duration::from_nanos(1))
        );
        for garbage in [
            "",
            "s",
            "37",
            "-5s",
            "1.s",
            ".5s",
            "1.5ms",
            "1e3s",
            "soon",
            "1.0000000001s",
        ] {
            assert_eq!(parse_duration(garbage), None, "{garbage:?}");
        }
        // Huge values are clamped (the router then caps the cooling, as it
        // does a huge `retry-after`), never an overflow.
        let most = Some(Duration::from_secs(MAX_DURATION_SECS));
        assert_eq!(parse_duration("315576000001s"), most);
        assert_eq!(parse_duration("99999999999999999999999999.5s"), most);
    }

    #[test]
    fn the_retry_delay_of_a_429_body() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(retry_delay(body), Some(Duration::from_secs(37)));
        let no_info = br#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(retry_delay(no_info), None);
        assert_eq!(retry_delay(b"<html>Too Many Requests</html>"), None);
        let bad = br#"{"error":{"details":[{"retryDelay":"later"}]}}"#;
        assert_eq!(retry_delay(bad), None);
    }

    #[test]
    fn an_invalid_or_expired_key_is_the_accounts_fault() {
        let invalid = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
        assert_eq!(key_refusal(invalid), Some("the Gemini API key is invalid"));
        let expired = br#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_EXPIRED"}]}}"#;
        assert_eq!(key_refusal(expired), Some("the Gemini API key has expired"));
        let clients = br#"{"error":{"code":400,"message":"contents is not specified","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(key_refusal(clients), None);
        let other_reason = br#"{"error":{"code":400,"status":"FAILED_PRECONDITION","details":[{"reason":"LOCATION_NOT_SUPPORTED"}]}}"#;
        assert_eq!(key_refusal(other_reason), None);
        assert_eq!(key_refusal(b"not json"), None);
    }
}

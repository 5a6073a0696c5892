//! Provider clients: one tower [`Service`](tower::Service) per upstream
//! protocol. A provider turns the client's request into the upstream one
//! (URL, credentials, headers), sends it, and classifies what came back.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod proxy;
#[cfg(test)]
mod test_support;

/// A failure to get a response from the upstream at all.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream request failed: {0}")]
    Request(String),
    #[error("the account has no usable credentials")]
    NoCredentials,
    #[error("the account's base URL is invalid: {0}")]
    BadUrl(String),
    /// An OAuth account's access token could not be had (refresh failed).
    #[error("the account's OAuth token is unusable: {0}")]
    OAuth(String),
    /// The outbound guard refused the destination or the proxy.
    #[error("{0}")]
    Blocked(crate::outbound::Denied),
    /// The account's credential is a member key of a gateway: sent on, it
    /// would make a member's key an upstream account (and can loop).
    #[error("the account's credential is an AiCarpool member key (aicp_…), not an upstream key")]
    MemberKey,
}

impl ProviderError {
    /// The failure's class: what connection tests report and metrics count.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Blocked(_) => "blocked",
            ProviderError::Connect(_) | ProviderError::Request(_) => "unreachable",
            ProviderError::Timeout => "timeout",
            ProviderError::NoCredentials | ProviderError::BadUrl(_) | ProviderError::MemberKey => {
                "config"
            }
            ProviderError::OAuth(_) => "oauth",
        }
    }

    /// What a member is told: the class in words, never the upstream's
    /// host, port or path (the `Display` text, for logs, has them).
    pub fn public_message(&self) -> &'static str {
        match self {
            ProviderError::Blocked(_) => {
                "the account's destination is refused by the server's outbound rules"
            }
            ProviderError::Connect(_) | ProviderError::Request(_) => {
                "the upstream could not be reached"
            }
            ProviderError::Timeout => "the upstream did not answer in time",
            ProviderError::NoCredentials => "the account has no usable credentials",
            ProviderError::BadUrl(_) => "the account's base URL is invalid",
            ProviderError::OAuth(_) => "the account's OAuth token is unusable",
            ProviderError::MemberKey => {
                "the account's credential is an AiCarpool member key, not an upstream key"
            }
        }
    }

    /// `secret` as an upstream credential: anything but a member key.
    pub(crate) fn upstream_secret(secret: &str) -> Result<&str, ProviderError> {
        if crate::key::is_member_key_like(secret) {
            return Err(ProviderError::MemberKey);
        }
        Ok(secret)
    }

    pub(crate) fn from_reqwest(e: &reqwest::Error) -> Self {
        // reqwest's Display leaves out the cause; walk the chain, which
        // names the host but never a header value.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            // The resolver hook's refusal, from deep in the connect error.
            if let Some(denied) = s.downcast_ref::<crate::outbound::Denied>() {
                return ProviderError::Blocked(denied.clone());
            }
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        if e.is_timeout() {
            ProviderError::Timeout
        } else if e.is_connect() {
            ProviderError::Connect(msg)
        } else {
            ProviderError::Request(msg)
        }
    }
}

/// Sends a JSON body upstream (the Gemini and OpenAI providers).
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: String,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<reqwest::Response, ProviderError> {
    http.post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(&e))
}

/// How an upstream answer is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    /// 2xx: forward it.
    Success,
    /// 429: try another account.
    RateLimited,
    /// 529: try another account.
    Overloaded,
    /// 5xx: try another account.
    ServerError,
    /// 401/403: the account's credentials were refused; try another.
    CredentialsRejected,
    /// Any other 4xx: the client's fault, forwarded as is.
    ClientError,
}

impl ResponseClass {
    pub fn of(status: http::StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => ResponseClass::Success,
            429 => ResponseClass::RateLimited,
            529 => ResponseClass::Overloaded,
            // 407: the account's proxy refused its credentials.
            401 | 403 | 407 => ResponseClass::CredentialsRejected,
            // Redirects are not followed (they would carry the key to
            // another origin): an upstream that answers one is broken.
            300..=399 => ResponseClass::ServerError,
            500..=599 => ResponseClass::ServerError,
            _ => ResponseClass::ClientError,
        }
    }

    /// Whether the next candidate should be tried.
    pub fn fails_over(self) -> bool {
        !matches!(self, ResponseClass::Success | ResponseClass::ClientError)
    }
}

/// Client headers never forwarded: hop-by-hop ones, the member's own
/// credentials, and those the HTTP client sets itself.
const DROPPED_REQUEST_HEADERS: [HeaderName; 12] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::AUTHORIZATION,
    header::COOKIE,
    header::ACCEPT_ENCODING,
    header::EXPECT,
];

const DROPPED_REQUEST_HEADER_NAMES: [&str; 5] = [
    "x-api-key",
    "x-goog-api-key",
    "keep-alive",
    "proxy-connection",
    "forwarded",
];

/// The client's headers minus those that must not go upstream.
pub fn forwardable_request_headers(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        let n = name.as_str();
        if DROPPED_REQUEST_HEADERS.contains(name)
            || DROPPED_REQUEST_HEADER_NAMES.contains(&n)
            || n.starts_with("x-forwarded-")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out.insert(
        header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
    out
}

/// Upstream response headers that must not reach the client.
pub fn is_dropped_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "content-encoding"
            | "set-cookie"
            | "alt-svc"
            | "proxy-connection"
            | "upgrade"
            | "trailer"
            | "te"
    )
}

/// `retry-after` as seconds or an HTTP date, or the Anthropic unified reset
/// (epoch seconds), as a wait from now.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let now = chrono::Utc::now();
    if let Some(v) = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        if let Ok(secs) = v.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(date) = chrono::DateTime::parse_from_rfc2822(v.trim()) {
            let wait = date.with_timezone(&chrono::Utc) - now;
            return Some(wait.to_std().unwrap_or(Duration::ZERO));
        }
    }
    let reset = headers
        .get("anthropic-ratelimit-unified-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())?;
    // Saturating: the header is the upstream's to choose, any i64 included.
    let wait = reset.saturating_sub(now.timestamp());
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_credentials_and_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer aicp_x".parse().unwrap());
        h.insert("x-api-key", "aicp_y".parse().unwrap());
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("accept-encoding", "gzip, br".parse().unwrap());
        h.insert("anthropic-beta", "a,b".parse().unwrap());
        h.insert("x-claude-code-session-id", "s1".parse().unwrap());
        let out = forwardable_request_headers(&h);
        assert!(out.get("authorization").is_none());
        assert!(out.get("x-api-key").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out["accept-encoding"], "identity");
        assert_eq!(out["anthropic-beta"], "a,b");
        assert_eq!(out["x-claude-code-session-id"], "s1");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        let reset = chrono::Utc::now().timestamp() + 100;
        h.insert(
            "anthropic-ratelimit-unified-reset",
            reset.to_string().parse().unwrap(),
        );
        let got = retry_after(&h).unwrap().as_secs();
        assert!((98..=100).contains(&got), "{got}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn classes() {
        use http::StatusCode as S;
        assert_eq!(ResponseClass::of(S::OK), ResponseClass::Success);
        assert!(ResponseClass::of(S::from_u16(529).unwrap()).fails_over());
        assert!(ResponseClass::of(S::TOO_MANY_REQUESTS).fails_over());
        assert!(!ResponseClass::of(S::BAD_REQUEST).fails_over());
    }
}

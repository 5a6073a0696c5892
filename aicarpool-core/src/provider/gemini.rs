//! The Gemini API (`generativelanguage.googleapis.com` and compatible).
//!
//! The model and the method are in the path
//! (`/{v1beta|v1}/models/{model}:{method}`), the account's key goes in
//! `x-goog-api-key`, and the body passes through as the client sent it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

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
        let mut h = forwardable_request_headers(client);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut value = HeaderValue::from_str(key).map_err(|_| ProviderError::NoCredentials)?;
        value.set_sensitive(true);
        h.insert(KEY_HEADER, value);
        Ok(h)
    }

    async fn send(self, req: GeminiRequest) -> Result<reqwest::Response, ProviderError> {
        let http = self
            .clients
            .client(req.account.account.proxy.as_deref())
            .map_err(|e| ProviderError::Connect(format!("through the account's proxy: {e}")))?;
        let url = Self::url(
            &req.account,
            req.version,
            &req.model,
            req.method,
            req.query.as_deref(),
        );
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
}

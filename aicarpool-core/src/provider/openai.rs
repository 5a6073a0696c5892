//! OpenAI-compatible APIs: Chat Completions and Responses.
//!
//! An `openai_compatible` account's base URL includes the version prefix,
//! as OpenAI's SDKs take it (`https://api.openai.com/v1`,
//! `https://openrouter.ai/api/v1`); the endpoint path is appended. The
//! account's key goes in `Authorization: Bearer`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::proxy::HttpClients;
use super::{forwardable_request_headers, post_json, ProviderError};
use crate::router::RoutableAccount;

/// Which endpoint is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAiEndpoint {
    ChatCompletions,
    Responses,
}

impl OpenAiEndpoint {
    fn path(self) -> &'static str {
        match self {
            OpenAiEndpoint::ChatCompletions => "/chat/completions",
            OpenAiEndpoint::Responses => "/responses",
        }
    }
}

/// One attempt on one account.
#[derive(Debug)]
pub struct OpenAiRequest {
    pub account: Arc<RoutableAccount>,
    pub endpoint: OpenAiEndpoint,
    pub client_headers: HeaderMap,
    pub body: Bytes,
}

/// Sends OpenAI requests upstream through each account's proxy.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    clients: Arc<HttpClients>,
}

impl OpenAiProvider {
    pub fn new(clients: Arc<HttpClients>) -> Self {
        Self { clients }
    }

    pub fn url(account: &RoutableAccount, endpoint: OpenAiEndpoint) -> String {
        format!("{}{}", account.base_url, endpoint.path())
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
        let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| ProviderError::NoCredentials)?;
        value.set_sensitive(true);
        h.insert(AUTHORIZATION, value);
        Ok(h)
    }

    async fn send(self, req: OpenAiRequest) -> Result<reqwest::Response, ProviderError> {
        let url = Self::url(&req.account, req.endpoint);
        let http = self
            .clients
            .client_for(req.account.proxy_url().as_deref(), &url)?;
        let headers = Self::headers(&req.account, &req.client_headers)?;
        post_json(&http, url, headers, req.body).await
    }

    /// `GET {base}/models` with the account's key and `client` headers (a
    /// hop mark): a test of the account that costs no tokens.
    pub async fn list_models(
        &self,
        account: &RoutableAccount,
        client: &HeaderMap,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = format!("{}/models", account.base_url);
        let http = self
            .clients
            .client_for(account.proxy_url().as_deref(), &url)?;
        let mut headers = Self::headers(account, client)?;
        headers.remove(CONTENT_TYPE);
        http.get(url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(&e))
    }
}

impl tower::Service<OpenAiRequest> for OpenAiProvider {
    type Response = reqwest::Response;
    type Error = ProviderError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, ProviderError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: OpenAiRequest) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::Platform;
    use crate::provider::test_support::routable;

    #[test]
    fn endpoints_append_to_the_base_url() {
        let mut a = routable(Platform::OpenaiCompatible, None);
        a.base_url = "https://openrouter.ai/api/v1".into();
        assert_eq!(
            OpenAiProvider::url(&a, OpenAiEndpoint::Responses),
            "https://openrouter.ai/api/v1/responses"
        );
        assert_eq!(
            OpenAiProvider::url(&a, OpenAiEndpoint::ChatCompletions),
            "https://openrouter.ai/api/v1/chat/completions"
        );
    }

    #[test]
    fn a_bearer_of_the_account_replaces_the_members() {
        let a = routable(Platform::OpenaiCompatible, None);
        let mut client = HeaderMap::new();
        client.insert("authorization", "Bearer aicp_member".parse().unwrap());
        client.insert("session-id", "s1".parse().unwrap());
        let h = OpenAiProvider::headers(&a, &client).unwrap();
        assert_eq!(h["authorization"], "Bearer upstream-secret");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h["session-id"], "s1");
    }
}

//! The Anthropic Messages protocol: Anthropic itself and compatible relays.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::{forwardable_request_headers, ProviderError};
use crate::account::{Account, AuthStyle, Platform, Preset};
use crate::router::RoutableAccount;

/// `anthropic-version` sent when the client sent none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which Messages endpoint is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagesEndpoint {
    Messages,
    CountTokens,
}

impl MessagesEndpoint {
    fn path(self) -> &'static str {
        match self {
            MessagesEndpoint::Messages => "/v1/messages",
            MessagesEndpoint::CountTokens => "/v1/messages/count_tokens",
        }
    }
}

/// One attempt on one account.
#[derive(Debug)]
pub struct MessagesRequest {
    pub account: Arc<RoutableAccount>,
    pub endpoint: MessagesEndpoint,
    /// The client's query string (e.g. `beta=true`).
    pub query: Option<String>,
    pub client_headers: HeaderMap,
    pub body: Bytes,
}

/// Sends Messages requests upstream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    http: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// The URL of `endpoint` on the account. The query goes only to
    /// Anthropic itself: relays are not promised to accept `?beta=true`.
    pub fn url(
        account: &RoutableAccount,
        endpoint: MessagesEndpoint,
        query: Option<&str>,
    ) -> String {
        let mut url = format!("{}{}", account.base_url, endpoint.path());
        if let (Some(q), Platform::ClaudeApi | Platform::ClaudeOauth) =
            (query.filter(|q| !q.is_empty()), account.account.platform)
        {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// The upstream headers: the client's forwardable ones, then the
    /// account's credentials in the account's style.
    pub fn headers(
        account: &RoutableAccount,
        client: &HeaderMap,
    ) -> Result<HeaderMap, ProviderError> {
        let mut h = forwardable_request_headers(client);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if !h.contains_key("anthropic-version") {
            h.insert(
                "anthropic-version",
                HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
            );
        }
        let secret = account
            .credentials
            .bearer_or_key()
            .ok_or(ProviderError::NoCredentials)?;
        let (name, value) = match account.account.auth_style() {
            AuthStyle::XApiKey => (
                http::HeaderName::from_static("x-api-key"),
                secret.to_owned(),
            ),
            AuthStyle::Bearer => (AUTHORIZATION, format!("Bearer {secret}")),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| ProviderError::NoCredentials)?;
        value.set_sensitive(true);
        h.insert(name, value);
        Ok(h)
    }

    async fn send(
        http: reqwest::Client,
        req: MessagesRequest,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = Self::url(&req.account, req.endpoint, req.query.as_deref());
        let headers = Self::headers(&req.account, &req.client_headers)?;
        http.post(url)
            .headers(headers)
            .body(req.body)
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(&e))
    }
}

impl tower::Service<MessagesRequest> for AnthropicProvider {
    type Response = reqwest::Response;
    type Error = ProviderError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, ProviderError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: MessagesRequest) -> Self::Future {
        Box::pin(Self::send(self.http.clone(), req))
    }
}

/// A cheap model for a connectivity test on each platform or preset.
pub fn probe_model(account: &Account) -> String {
    if let Some(m) = account.model_map.values().next() {
        return m.clone();
    }
    if let Some(m) = account.models.iter().find(|m| !m.contains('*')) {
        return m.clone();
    }
    match account.preset {
        Some(Preset::Kimi) => "kimi-k2-turbo-preview",
        Some(Preset::Qwen) => "qwen3-coder-plus",
        Some(Preset::Glm) => "glm-4.5-air",
        Some(Preset::Deepseek) => "deepseek-chat",
        _ => "claude-haiku-4-5",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountOwner, Credentials};
    use crate::secret::Sealed;

    fn routable(platform: Platform, preset: Option<Preset>) -> RoutableAccount {
        let now = chrono::Utc::now();
        let account = Account {
            id: "a1".into(),
            name: "a".into(),
            platform,
            preset,
            base_url: None,
            owner: AccountOwner::Group("g".into()),
            models: vec![],
            model_map: Default::default(),
            priority: 50,
            weight: 1,
            max_concurrency: None,
            proxy: None,
            enabled: true,
            credentials: Sealed::default(),
            created_at: now,
            updated_at: now,
        };
        let base_url = account.effective_base_url().unwrap_or_default();
        RoutableAccount {
            account,
            credentials: Credentials {
                api_key: Some("upstream-secret".into()),
                ..Default::default()
            },
            base_url,
            in_flight: Default::default(),
        }
    }

    #[test]
    fn url_keeps_beta_query_only_for_anthropic() {
        let a = routable(Platform::ClaudeApi, None);
        assert_eq!(
            AnthropicProvider::url(&a, MessagesEndpoint::Messages, Some("beta=true")),
            "https://api.anthropic.com/v1/messages?beta=true"
        );
        let k = routable(Platform::AnthropicCompatible, Some(Preset::Kimi));
        assert_eq!(
            AnthropicProvider::url(&k, MessagesEndpoint::CountTokens, Some("beta=true")),
            "https://api.moonshot.cn/anthropic/v1/messages/count_tokens"
        );
    }

    #[test]
    fn credentials_follow_the_account_style() {
        let mut client = HeaderMap::new();
        client.insert("authorization", "Bearer aicp_member".parse().unwrap());
        client.insert("anthropic-beta", "x".parse().unwrap());
        let h = AnthropicProvider::headers(&routable(Platform::ClaudeApi, None), &client).unwrap();
        assert_eq!(h["x-api-key"], "upstream-secret");
        assert!(h.get("authorization").is_none());
        assert_eq!(h["anthropic-version"], DEFAULT_ANTHROPIC_VERSION);
        let kimi = routable(Platform::AnthropicCompatible, Some(Preset::Kimi));
        let h = AnthropicProvider::headers(&kimi, &client).unwrap();
        assert_eq!(h["authorization"], "Bearer upstream-secret");
        assert!(h.get("x-api-key").is_none());
        assert_eq!(h["anthropic-beta"], "x");
    }
}

//! The Anthropic Messages protocol: Anthropic itself and compatible relays.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::proxy::HttpClients;
use super::{forwardable_request_headers, ProviderError};
use crate::account::{Account, AuthStyle, Platform, Preset};
use crate::oauth::{TokenManager, OAUTH_BETA};
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

/// Sends Messages requests upstream, through each account's proxy, with
/// fresh OAuth tokens for subscription accounts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    clients: Arc<HttpClients>,
    oauth: Option<Arc<TokenManager>>,
}

impl AnthropicProvider {
    /// Calls that connect where `guard` allows; OAuth accounts use their
    /// stored token as it is (see [`Self::with_oauth`]).
    pub fn new(guard: crate::outbound::OutboundGuard) -> Self {
        Self::with_clients(Arc::new(HttpClients::new(guard, Duration::from_secs(10))))
    }

    pub fn with_clients(clients: Arc<HttpClients>) -> Self {
        Self {
            clients,
            oauth: None,
        }
    }

    /// OAuth accounts get their token from `tokens`: refreshed ahead of
    /// expiry, and once more after an upstream 401 (then the request is
    /// sent again, once).
    pub fn with_oauth(mut self, tokens: Arc<TokenManager>) -> Self {
        self.oauth = Some(tokens);
        self
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
        let secret = account
            .credentials
            .bearer_or_key()
            .ok_or(ProviderError::NoCredentials)?;
        Self::headers_with(account, client, secret)
    }

    /// As [`Self::headers`], with `secret` as the account's key or token.
    /// OAuth accounts also get [`OAUTH_BETA`] in `anthropic-beta`.
    pub fn headers_with(
        account: &RoutableAccount,
        client: &HeaderMap,
        secret: &str,
    ) -> Result<HeaderMap, ProviderError> {
        let secret = ProviderError::upstream_secret(secret)?;
        let mut h = forwardable_request_headers(client);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if !h.contains_key("anthropic-version") {
            h.insert(
                "anthropic-version",
                HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
            );
        }
        if account.account.platform == Platform::ClaudeOauth {
            merge_beta(&mut h, OAUTH_BETA);
        }
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

    async fn send(self, req: MessagesRequest) -> Result<reqwest::Response, ProviderError> {
        let url = Self::url(&req.account, req.endpoint, req.query.as_deref());
        let http = self
            .clients
            .client_for(req.account.proxy_url().as_deref(), &url)?;
        let tokens = match (&self.oauth, req.account.account.platform) {
            (Some(t), Platform::ClaudeOauth) => t,
            _ => {
                let headers = Self::headers(&req.account, &req.client_headers)?;
                return post(&http, url, headers, req.body).await;
            }
        };
        let oauth_error = |e: crate::oauth::OAuthError| ProviderError::OAuth(e.to_string());
        let token = tokens
            .access_token(&req.account)
            .await
            .map_err(oauth_error)?;
        let headers = Self::headers_with(&req.account, &req.client_headers, &token)?;
        let resp = post(&http, url.clone(), headers, req.body.clone()).await?;
        if resp.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        // The token was refused before its time (revoked, or refreshed
        // elsewhere): refresh once and send again.
        drop(resp);
        let fresh = tokens
            .after_rejection(&req.account, &token)
            .await
            .map_err(oauth_error)?;
        let headers = Self::headers_with(&req.account, &req.client_headers, &fresh)?;
        post(&http, url, headers, req.body).await
    }
}

async fn post(
    http: &reqwest::Client,
    url: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<reqwest::Response, ProviderError> {
    http.post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(&e))
}

/// Adds `flag` to the `anthropic-beta` list (one header, comma-separated,
/// each flag once, the client's order kept).
fn merge_beta(h: &mut HeaderMap, flag: &str) {
    let mut flags: Vec<String> = Vec::new();
    for value in h.get_all("anthropic-beta") {
        let Ok(v) = value.to_str() else { continue };
        for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !flags.iter().any(|x| x == f) {
                flags.push(f.to_owned());
            }
        }
    }
    if !flags.iter().any(|x| x == flag) {
        flags.push(flag.to_owned());
    }
    if let Ok(v) = HeaderValue::from_str(&flags.join(",")) {
        h.insert("anthropic-beta", v);
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
        Box::pin(self.clone().send(req))
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
            serves: Vec::new(),
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

    #[test]
    fn oauth_accounts_send_a_bearer_and_the_beta_flag_once() {
        let a = routable(Platform::ClaudeOauth, None);
        let mut client = HeaderMap::new();
        client.insert("x-api-key", "aicp_member".parse().unwrap());
        client.append("anthropic-beta", "a, b,a".parse().unwrap());
        client.append("anthropic-beta", "oauth-2025-04-20,c".parse().unwrap());
        let h = AnthropicProvider::headers_with(&a, &client, "sk-ant-oat01-x").unwrap();
        assert_eq!(h["authorization"], "Bearer sk-ant-oat01-x");
        assert!(h["authorization"].is_sensitive());
        assert!(h.get("x-api-key").is_none());
        assert_eq!(h.get_all("anthropic-beta").iter().count(), 1);
        assert_eq!(h["anthropic-beta"], "a,b,oauth-2025-04-20,c");
        let h = AnthropicProvider::headers_with(&a, &HeaderMap::new(), "t").unwrap();
        assert_eq!(h["anthropic-beta"], "oauth-2025-04-20");
        // API-key accounts get no OAuth flag.
        let k = routable(Platform::ClaudeApi, None);
        assert!(AnthropicProvider::headers_with(&k, &HeaderMap::new(), "k")
            .unwrap()
            .get("anthropic-beta")
            .is_none());
    }

    #[test]
    fn a_member_key_is_never_sent_upstream() {
        let mut client = HeaderMap::new();
        client.insert("x-aicarpool-hop", "abc".parse().unwrap());
        for platform in [Platform::ClaudeApi, Platform::ClaudeOauth] {
            let a = routable(platform, None);
            let e = AnthropicProvider::headers_with(&a, &client, "aicp_g_u_secret").unwrap_err();
            assert!(matches!(e, ProviderError::MemberKey), "{e}");
            // The mark travels on with an upstream key.
            let h = AnthropicProvider::headers_with(&a, &client, "sk-ant-x").unwrap();
            assert_eq!(h["x-aicarpool-hop"], "abc");
        }
    }
}

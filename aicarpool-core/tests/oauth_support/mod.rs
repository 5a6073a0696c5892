//! A gateway with one Claude OAuth account, a mock upstream and a mock
//! token endpoint, for the OAuth tests.
#![allow(dead_code)]

#[path = "../common/carpool.rs"]
mod carpool;

use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::account::{Account, Credentials, Platform};
use aicarpool_core::gateway::{Gateway, GatewayBody, GatewayConfig};
use aicarpool_core::oauth::{ClaudeOAuthConfig, TokenManagerConfig};
use aicarpool_core::secret::{MasterKey, Sealed, Sealer};
use aicarpool_core::store::{AccountStore, CredentialStore, DynStore, KeyStore, MemoryStore};
use aicarpool_testkit::{fixtures, MockOAuth, MockUpstream};
use bytes::Bytes;
use http_body_util::BodyExt;

pub const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

/// How the account starts out.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The access token expires this far from now (negative: expired).
    pub expires_in: chrono::Duration,
    /// Whether the upstream accepts the first access token.
    pub accepted: bool,
    /// A refresh token with the pair (false: a setup token).
    pub refreshable: bool,
    pub proxy: Option<String>,
    pub platform: Platform,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            expires_in: chrono::Duration::hours(8),
            accepted: true,
            refreshable: true,
            proxy: None,
            platform: Platform::ClaudeOauth,
        }
    }
}

pub struct Harness {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    pub sealer: Sealer,
    pub upstream: MockUpstream,
    pub oauth: MockOAuth,
    pub key: String,
    pub account: Account,
    pub access: String,
    pub refresh: String,
}

/// The gateway configuration used everywhere here: retries of a failed
/// refresh are not held back, so tests can recover at once.
pub fn gateway_for(store: DynStore, sealer: Sealer, oauth: &MockOAuth) -> Gateway {
    Gateway::builder(store, sealer)
        .outbound_guard(aicarpool_core::outbound::OutboundGuard::parse("127.0.0.0/8,::1").unwrap())
        .config(GatewayConfig {
            idle_timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .claude_oauth(ClaudeOAuthConfig {
            token_url: oauth.token_url(),
            client_id: CLIENT_ID.into(),
            ..Default::default()
        })
        .token_refresh(TokenManagerConfig {
            retry_backoff: Duration::ZERO,
            ..Default::default()
        })
        .build()
}

pub async fn harness(setup: Setup) -> Harness {
    let upstream = MockUpstream::start("sk-ant-api-key-unused").await.unwrap();
    let oauth = MockOAuth::start(CLIENT_ID).await.unwrap();
    oauth.link_upstream(&upstream);
    let (access, refresh) = oauth.mint();
    if !setup.accepted {
        upstream.revoke_key(&access);
    }
    let store = Arc::new(MemoryStore::new());
    let sealer = Sealer::new(&MasterKey::generate());
    let now = chrono::Utc::now();
    let (user, group) = carpool::owner_and_group(&store, Default::default()).await;
    let creds = if setup.platform == Platform::ClaudeOauth {
        Credentials {
            access_token: Some(access.clone()),
            refresh_token: setup.refreshable.then(|| refresh.clone()),
            expires_at: setup.refreshable.then(|| now + setup.expires_in),
            scopes: vec!["user:inference".into()],
            ..Default::default()
        }
    } else {
        Credentials {
            api_key: Some(access.clone()),
            ..Default::default()
        }
    };
    let mut account =
        carpool::group_account(&sealer, &group.id, setup.platform, &upstream.url, &creds);
    account.name = "subscription".into();
    account.proxy = setup.proxy;
    store.create_account(&account).await.unwrap();
    let (key, key_record) = carpool::member_key(&group.id, &user.id, "laptop", Default::default());
    store.create_key(&key_record).await.unwrap();
    let gateway = gateway_for(store.clone(), sealer.clone(), &oauth);
    Harness {
        gateway,
        store,
        sealer,
        upstream,
        oauth,
        key,
        account,
        access,
        refresh,
    }
}

impl Harness {
    /// What Claude Code sends, with the member's key.
    pub fn claude_code_request(&self) -> http::Request<Bytes> {
        let captured = fixtures::claude_code_authtoken();
        let mut builder = http::Request::post(format!("/api/v1{}", captured.path));
        for (name, value) in captured.replayable_headers() {
            builder = builder.header(name, value);
        }
        builder
            .header("authorization", format!("Bearer {}", self.key))
            .body(Bytes::from(captured.body))
            .unwrap()
    }

    /// A small non-streaming request.
    pub fn small_request(&self) -> http::Request<Bytes> {
        let body = serde_json::json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        });
        http::Request::post("/v1/messages")
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    /// The account's credentials as stored now.
    pub async fn stored(&self) -> (Sealed, Credentials) {
        let sealed = self
            .store
            .sealed_credentials(&self.account.id)
            .await
            .unwrap()
            .unwrap();
        let creds = self.sealer.open(&self.account.id, &sealed).unwrap();
        (sealed, creds)
    }

    /// The access tokens the upstream saw, in order.
    pub fn bearers(&self) -> Vec<String> {
        self.upstream
            .received()
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_owned)
            })
            .collect()
    }
}

pub async fn body_text(body: GatewayBody) -> String {
    let bytes = body.collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

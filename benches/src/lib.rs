//! # aicarpool-benches
//!
//! Measurements of what the gateway adds to a request, each taken next to
//! a baseline measured in the same run, so that the figures read as ratios
//! and differences rather than as absolute numbers that depend on the
//! machine:
//!
//! - `benches/key_lookup.rs` (criterion): parsing and hashing a member key,
//!   the constant-time comparison, and a full lookup among 10,000 keys;
//! - `benches/gateway_overhead.rs` (criterion): one request through
//!   [`Gateway::handle`] against a mock upstream, next to the same request
//!   sent straight to that mock; and a route decision over 100 accounts;
//! - `src/bin/load.rs` (`aicarpool-load`): a bounded load run over loopback
//!   HTTP, gateway and direct requests interleaved, reporting latency
//!   percentiles, the added latency, and memory per open stream.
//!
//! This library is what they share: a [`Fixture`] (a gateway over an
//! in-memory store holding one group, one member key and one account that
//! points at the mock), the request bodies in [`Replay`], the
//! [`unpooled_client`] for streaming comparisons, and [`rss_kib`].
//! See `benches/README.md` for how to run them and read the figures.

pub mod outage;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform};
use aicarpool_core::binding::{Binding, BindingMode, BoundAccount};
use aicarpool_core::gateway::{Gateway, GatewayConfig};
use aicarpool_core::id::new_id;
use aicarpool_core::key::{KeyRecord, MemberKey, Service};
use aicarpool_core::org::{Group, GroupRole, Membership, User};
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::{AccountStore, GroupStore, KeyStore, MemoryStore, UserStore};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The key the mock upstream accepts; the fixture's account carries it.
pub const UPSTREAM_KEY: &str = "sk-ant-bench-upstream";

/// The model of the small requests.
pub const MODEL: &str = "claude-sonnet-4-5";

/// A gateway ready to serve one member, with its account on `upstream`.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    /// The member key as a client sends it.
    pub member_key: String,
}

impl Fixture {
    /// Creates a user, a group, one Claude API account whose base URL is
    /// `upstream` (sealed credentials: [`UPSTREAM_KEY`]), a dedicated
    /// binding and a member key, then builds the gateway with its default
    /// (pooled) upstream client. Must run inside a Tokio runtime: the
    /// gateway starts its usage writer there.
    pub async fn new(upstream: &str) -> anyhow::Result<Self> {
        Self::with_upstream_client(upstream, None).await
    }

    /// As [`Fixture::new`], with `http` as the gateway's upstream client
    /// when given (e.g. [`unpooled_client`]).
    pub async fn with_upstream_client(
        upstream: &str,
        http: Option<reqwest::Client>,
    ) -> anyhow::Result<Self> {
        let store = Arc::new(MemoryStore::new());
        let sealer = Sealer::new(&MasterKey::generate());
        let now = Utc::now();
        let user = User {
            id: new_id(),
            email: format!("{}@example.com", new_id().to_lowercase()),
            name: "Member".into(),
            password_hash: String::new(),
            is_system_admin: false,
            created_at: now,
        };
        store.create_user(&user).await?;
        let group = Group {
            id: new_id(),
            name: "carpool".into(),
            enterprise_id: None,
            department_id: None,
            max_members: None,
            limits: Default::default(),
            fair_share: Default::default(),
            fare_split: Default::default(),
            created_by: user.id.clone(),
            created_at: now,
        };
        let owner = Membership {
            group_id: group.id.clone(),
            user_id: user.id.clone(),
            role: GroupRole::Owner,
            share_weight: aicarpool_core::carpool::DEFAULT_SHARE_WEIGHT,
            joined_at: now,
        };
        store.create_group(&group, &owner).await?;
        let account_id = new_id();
        let credentials = Credentials {
            api_key: Some(UPSTREAM_KEY.into()),
            ..Default::default()
        };
        let account = Account {
            id: account_id.clone(),
            name: "bench".into(),
            platform: Platform::ClaudeApi,
            preset: None,
            base_url: Some(upstream.to_owned()),
            owner: AccountOwner::Group(group.id.clone()),
            models: vec![],
            model_map: Default::default(),
            serves: Vec::new(),
            priority: 10,
            weight: 1,
            max_concurrency: None,
            proxy: None,
            enabled: true,
            credentials: sealer.seal(&account_id, &credentials)?,
            created_at: now,
            updated_at: now,
        };
        store.create_account(&account).await?;
        store
            .put_binding(&Binding {
                group_id: group.id.clone(),
                mode: BindingMode::Dedicated,
                accounts: vec![BoundAccount {
                    account_id,
                    priority: None,
                    weight: None,
                    dedicated: true,
                }],
            })
            .await?;
        let key = MemberKey::generate(&group.id, &user.id);
        store
            .create_key(&key_record(&key, &group.id, &user.id, now))
            .await?;
        let config = GatewayConfig {
            // Short runs: a shorter flush keeps shutdown quick, and it does
            // not change the request path.
            usage_writer: aicarpool_core::usage::UsageWriterConfig {
                flush_interval: Duration::from_millis(50),
                ..Default::default()
            },
            ..Default::default()
        };
        // The mock upstream is on loopback, which the guard denies by default.
        let guard = aicarpool_core::outbound::OutboundGuard::parse("127.0.0.0/8,::1")?;
        let mut builder = Gateway::builder(store.clone(), sealer)
            .outbound_guard(guard)
            .config(config);
        if let Some(http) = http {
            builder = builder.http_client(http);
        }
        let gateway = builder.build();
        Ok(Self {
            gateway,
            store,
            member_key: key.expose(),
        })
    }
}

/// A client that opens a new connection for every request, Nagle off.
///
/// The mock upstream leaves Nagle's algorithm on, so on a kept-alive
/// connection each streamed answer stalls until the client's delayed ACK
/// (~40 ms on Linux), which buries what the gateway costs. A fresh
/// connection starts in quick-ACK mode and does not stall; giving both the
/// gateway and the direct baseline such a client keeps them comparable,
/// each paying one loopback connect.
pub fn unpooled_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// The stored record of a member key that may use everything.
pub fn key_record(key: &MemberKey, group_id: &str, user_id: &str, now: DateTime<Utc>) -> KeyRecord {
    KeyRecord {
        id: new_id(),
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        name: "bench".into(),
        key_hash: Some(key.hash()),
        hint: key.hint(),
        enabled: true,
        expires_at: None,
        services: Service::ALL.to_vec(),
        models: vec![],
        clients: vec![],
        limits: Default::default(),
        created_at: now,
        updated_at: now,
    }
}

/// A request to send, once through the gateway and once straight to the
/// upstream, identical but for the credential.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Path with query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Every header but the credential.
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Replay {
    /// A small Messages request with one user turn, streaming or not.
    pub fn small(stream: bool) -> Self {
        let body = serde_json::json!({
            "model": MODEL,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello."}],
        });
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Self {
            path: "/v1/messages".into(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    /// The captured Claude Code request: ~76 KB, streaming, with its own
    /// headers (betas, session id, user agent).
    pub fn claude_code() -> Self {
        let captured = aicarpool_testkit::fixtures::claude_code_authtoken();
        let mut headers = HeaderMap::new();
        for (name, value) in captured.replayable_headers() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        Self {
            path: captured.path,
            headers,
            body: Bytes::from(captured.body),
        }
    }

    /// Headers for the gateway: the member key as `Authorization: Bearer`,
    /// which is how Claude Code presents a token.
    pub fn member_headers(&self, member_key: &str) -> HeaderMap {
        let mut h = self.headers.clone();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {member_key}")) {
            h.insert(http::header::AUTHORIZATION, v);
        }
        h
    }

    /// Headers for the upstream itself: the account key as `x-api-key`.
    pub fn upstream_headers(&self) -> HeaderMap {
        let mut h = self.headers.clone();
        h.insert("x-api-key", HeaderValue::from_static(UPSTREAM_KEY));
        h
    }

    /// An in-process request for [`Gateway::handle`].
    pub fn gateway_request(&self, member_headers: &HeaderMap) -> http::Request<Bytes> {
        let mut req = http::Request::new(self.body.clone());
        *req.method_mut() = http::Method::POST;
        if let Ok(uri) = self.path.parse() {
            *req.uri_mut() = uri;
        }
        *req.headers_mut() = member_headers.clone();
        req
    }
}

/// Resident set size of this process in KiB (`VmRSS` in
/// `/proc/self/status`); `None` where there is no procfs.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_readable_here() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(rss_kib().is_some_and(|kib| kib > 0));
        }
    }

    #[test]
    fn replays_differ_only_by_credential() {
        let r = Replay::claude_code();
        assert!(r.body.len() > 60_000);
        let m = r.member_headers("aicp_g_u_secret");
        let u = r.upstream_headers();
        assert_eq!(m.len(), u.len());
        assert!(m.get("x-api-key").is_none());
        assert!(u.get(http::header::AUTHORIZATION).is_none());
    }
}

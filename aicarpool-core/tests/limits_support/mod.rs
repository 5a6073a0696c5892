//! A carpool team for the limit tests: one group, one member with several
//! keys, one account on a mock upstream, and a gateway whose limiter,
//! clock and prices the test chooses.
#![allow(dead_code)]

#[path = "../common/carpool.rs"]
mod carpool;

use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::account::Platform;
use aicarpool_core::gateway::{Gateway, GatewayConfig};
use aicarpool_core::key::KeyRecord;
use aicarpool_core::limit::{Clock, InMemoryLimiter, Limiter, StoreBaseline, SystemClock};
use aicarpool_core::limits::KeyLimits;
use aicarpool_core::pricing::Pricing;
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::{AccountStore, KeyStore, MemoryStore};
use aicarpool_core::usage::{UsageRecord, UsageWriter, UsageWriterConfig};
use aicarpool_testkit::{MockUpstream, MockUsage};
use bytes::Bytes;
use http_body_util::BodyExt;

pub const UPSTREAM_KEY: &str = "sk-ant-limits-upstream";
pub const MODEL: &str = "claude-sonnet-4-5";

/// What the test chooses.
pub struct Setup {
    /// One key per entry, all of the same member.
    pub keys: Vec<KeyLimits>,
    pub group: KeyLimits,
    pub clock: Arc<dyn Clock>,
    pub tz: chrono_tz::Tz,
    pub pricing: Pricing,
    pub usage: MockUsage,
    /// A price multiplier for the team's account (as a price file gives).
    pub account_multiplier: Option<f64>,
    /// How long usage records wait in the writer at most.
    pub flush_interval: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            keys: vec![KeyLimits::default()],
            group: KeyLimits::default(),
            clock: Arc::new(SystemClock),
            tz: chrono_tz::Tz::UTC,
            pricing: Pricing::embedded(),
            usage: MockUsage::default(),
            account_multiplier: None,
            flush_interval: Duration::from_millis(20),
        }
    }
}

pub struct Team {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    pub mock: MockUpstream,
    pub limiter: Arc<dyn Limiter>,
    pub group_id: String,
    pub user_id: String,
    pub account_id: String,
    /// (key as sent, its record).
    pub keys: Vec<(String, KeyRecord)>,
}

/// A reply read to its end.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn error_type(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        v["error"]["type"].as_str().unwrap_or_default().to_owned()
    }

    pub fn error_message(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn team(setup: Setup) -> Team {
    let mock = MockUpstream::start_with_usage(UPSTREAM_KEY, setup.usage)
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let sealer = Sealer::new(&MasterKey::generate());
    let _now = chrono::Utc::now();
    let (user, group) = carpool::owner_and_group(&store, setup.group.clone()).await;
    let account = carpool::group_account(
        &sealer,
        &group.id,
        Platform::ClaudeApi,
        &mock.url,
        &carpool::api_key(UPSTREAM_KEY),
    );
    store.create_account(&account).await.unwrap();
    carpool::bind_dedicated(&store, &group.id, std::slice::from_ref(&account.id)).await;
    let mut keys = Vec::new();
    for (i, limits) in setup.keys.into_iter().enumerate() {
        let (secret, record) =
            carpool::member_key(&group.id, &user.id, &format!("key-{i}"), limits);
        store.create_key(&record).await.unwrap();
        keys.push((secret, record));
    }
    let writer = UsageWriter::spawn(
        store.clone(),
        UsageWriterConfig {
            flush_interval: setup.flush_interval,
            ..Default::default()
        },
    );
    let limiter: Arc<dyn Limiter> = Arc::new(InMemoryLimiter::with_clock(
        Arc::new(StoreBaseline::new(store.clone()).after_writing(writer.clone())),
        setup.tz,
        setup.clock,
    ));
    let config = GatewayConfig {
        idle_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let mut pricing = setup.pricing;
    if let Some(m) = setup.account_multiplier {
        let file = serde_json::json!({"accounts": {account.id.clone(): {"multiplier": m}}});
        pricing.merge_json(&file.to_string()).unwrap();
    }
    let gateway = Gateway::builder(store.clone(), sealer)
        .outbound_guard(aicarpool_core::outbound::OutboundGuard::parse("127.0.0.0/8,::1").unwrap())
        .config(config)
        .pricing(pricing)
        .limiter(limiter.clone())
        .usage_writer(writer)
        .build();
    Team {
        gateway,
        store,
        mock,
        limiter,
        group_id: group.id,
        user_id: user.id,
        account_id: account.id,
        keys,
    }
}

/// A Messages body of about `pad` bytes of prompt.
pub fn body(max_tokens: u64, stream: bool, pad: usize) -> serde_json::Value {
    serde_json::json!({
        "model": MODEL,
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "x".repeat(pad)}],
    })
}

impl Team {
    pub fn request(&self, key: usize, body: &serde_json::Value) -> http::Request<Bytes> {
        http::Request::post("/v1/messages")
            .header("x-api-key", &self.keys[key].0)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    /// Sends and reads the whole answer.
    pub async fn send(&self, key: usize, body: &serde_json::Value) -> Reply {
        let resp = self.gateway.handle(self.request(key, body)).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Waits for open streams and the writer, then returns every record.
    pub async fn records(&self) -> Vec<UsageRecord> {
        self.gateway.shutdown().await;
        self.store.usage_records()
    }
}

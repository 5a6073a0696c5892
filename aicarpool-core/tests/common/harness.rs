//! A gateway over an in-memory store: one member key of a carpool group
//! whose accounts point at mock upstreams.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use aicarpool_core::account::{Platform, Preset};
use aicarpool_core::gateway::{Gateway, GatewayBody, GatewayConfig, InvalidationBus};
use aicarpool_core::key::KeyRecord;
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::{AccountStore, KeyStore, MemoryStore};
use aicarpool_core::usage::UsageRecord;
use aicarpool_testkit::fixtures;
use bytes::Bytes;
use http_body_util::BodyExt;

use super::carpool;

pub const UPSTREAM_KEY: &str = "sk-ant-upstream-secret";

pub struct Harness {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    pub key: String,
    pub key_record: KeyRecord,
    pub account_ids: Vec<String>,
}

pub struct AccountSpec {
    pub base_url: String,
    pub platform: Platform,
    pub preset: Option<Preset>,
    pub model_map: BTreeMap<String, String>,
    pub max_concurrency: Option<u32>,
}

pub fn api_account(url: &str) -> AccountSpec {
    AccountSpec {
        base_url: url.to_owned(),
        platform: Platform::ClaudeApi,
        preset: None,
        model_map: BTreeMap::new(),
        max_concurrency: None,
    }
}

pub async fn harness(accounts: Vec<AccountSpec>) -> Harness {
    harness_with_bus(accounts, None).await
}

pub async fn harness_with_bus(
    accounts: Vec<AccountSpec>,
    bus: Option<Arc<dyn InvalidationBus>>,
) -> Harness {
    harness_with(accounts, bus, carpool::gateway_config()).await
}

/// A harness whose gateway runs with `config` (timeouts under test).
pub async fn harness_with(
    accounts: Vec<AccountSpec>,
    bus: Option<Arc<dyn InvalidationBus>>,
    config: GatewayConfig,
) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let sealer = Sealer::new(&MasterKey::generate());
    let (user, group) = carpool::owner_and_group(&store, Default::default()).await;
    let mut account_ids = Vec::new();
    for (i, spec) in accounts.into_iter().enumerate() {
        let mut account = carpool::group_account(
            &sealer,
            &group.id,
            spec.platform,
            &spec.base_url,
            &carpool::api_key(UPSTREAM_KEY),
        );
        account.name = format!("acc-{i}");
        account.preset = spec.preset;
        account.model_map = spec.model_map;
        account.priority = 10 + i as i32;
        account.max_concurrency = spec.max_concurrency;
        store.create_account(&account).await.unwrap();
        account_ids.push(account.id);
    }
    carpool::bind_dedicated(&store, &group.id, &account_ids).await;
    let (key, key_record) = carpool::member_key(&group.id, &user.id, "laptop", Default::default());
    store.create_key(&key_record).await.unwrap();
    let mut builder = Gateway::builder(store.clone(), sealer)
        .outbound_guard(aicarpool_core::outbound::OutboundGuard::parse("127.0.0.0/8,::1").unwrap())
        .config(config);
    if let Some(bus) = bus {
        builder = builder.invalidation_bus(bus);
    }
    let gateway = builder.build();
    Harness {
        gateway,
        store,
        key,
        key_record,
        account_ids,
    }
}

impl Harness {
    pub fn claude_code_request(&self) -> http::Request<Bytes> {
        let captured = fixtures::claude_code_authtoken();
        let mut builder = http::Request::post(format!("/api/v1{}", captured.path));
        for (name, value) in captured.replayable_headers() {
            builder = builder.header(name, value);
        }
        builder
            .header("authorization", format!("Bearer {}", self.key))
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .body(Bytes::from(captured.body))
            .unwrap()
    }

    pub fn json_request(&self, body: serde_json::Value) -> http::Request<Bytes> {
        http::Request::post("/v1/messages")
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    /// Waits for open streams and the usage writer, then returns every
    /// usage record.
    pub async fn records(&self) -> Vec<UsageRecord> {
        self.gateway.shutdown().await;
        self.store.usage_records()
    }
}

pub async fn body_text(body: GatewayBody) -> String {
    let bytes = body.collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

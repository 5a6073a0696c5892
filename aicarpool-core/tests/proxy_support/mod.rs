//! A carpool group whose accounts speak any protocol, for the
//! `/api/ai-proxy` tests: one member key, accounts on mock upstreams.
#![allow(dead_code)]

#[path = "../common/carpool.rs"]
mod carpool;

use std::collections::BTreeMap;
use std::sync::Arc;

use aicarpool_core::account::{Platform, Preset, Protocol};
use aicarpool_core::gateway::{Gateway, GatewayBody};
use aicarpool_core::key::KeyRecord;
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::{AccountStore, KeyStore, MemoryStore};
use aicarpool_core::usage::UsageRecord;
use aicarpool_testkit::fixtures::CapturedRequest;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

pub const UPSTREAM_KEY: &str = "sk-upstream-secret";

pub struct Harness {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    pub key: String,
    pub key_record: KeyRecord,
    pub account_ids: Vec<String>,
}

/// An account to create.
pub struct Spec {
    pub platform: Platform,
    pub preset: Option<Preset>,
    pub base_url: String,
    pub models: Vec<String>,
    pub model_map: BTreeMap<String, String>,
    pub serves: Vec<Protocol>,
}

pub fn gemini(url: &str) -> Spec {
    spec(Platform::Gemini, url.to_owned())
}

/// OpenAI-compatible accounts take the base URL with its `/v1`.
pub fn openai(url: &str) -> Spec {
    spec(Platform::OpenaiCompatible, format!("{url}/v1"))
}

pub fn claude(url: &str) -> Spec {
    spec(Platform::ClaudeApi, url.to_owned())
}

fn spec(platform: Platform, base_url: String) -> Spec {
    Spec {
        platform,
        preset: None,
        base_url,
        models: vec![],
        model_map: BTreeMap::new(),
        serves: vec![],
    }
}

impl Spec {
    pub fn models(mut self, models: &[&str]) -> Self {
        self.models = models.iter().map(|m| (*m).to_owned()).collect();
        self
    }

    pub fn map(mut self, from: &str, to: &str) -> Self {
        self.model_map.insert(from.into(), to.into());
        self
    }

    /// Lets the account serve clients of `protocols` through translation.
    pub fn serves(mut self, protocols: &[Protocol]) -> Self {
        self.serves = protocols.to_vec();
        self
    }
}

pub async fn harness(accounts: Vec<Spec>) -> Harness {
    harness_with(accounts, |_| {}).await
}

/// As [`harness`], with the member key shaped by `key`.
pub async fn harness_with(accounts: Vec<Spec>, key: impl FnOnce(&mut KeyRecord)) -> Harness {
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
        account.models = spec.models;
        account.model_map = spec.model_map;
        account.serves = spec.serves;
        account.priority = 10 + i as i32;
        store.create_account(&account).await.unwrap();
        account_ids.push(account.id);
    }
    carpool::bind_dedicated(&store, &group.id, &account_ids).await;
    let (secret, mut key_record) =
        carpool::member_key(&group.id, &user.id, "laptop", Default::default());
    key(&mut key_record);
    store.create_key(&key_record).await.unwrap();
    let config = carpool::gateway_config();
    let gateway = Gateway::builder(store.clone(), sealer)
        .outbound_guard(aicarpool_core::outbound::OutboundGuard::parse("127.0.0.0/8,::1").unwrap())
        .config(config)
        .build();
    Harness {
        gateway,
        store,
        key: secret,
        key_record,
        account_ids,
    }
}

impl Harness {
    /// A POST of `body` to `path` with the key as a bearer token.
    pub fn post(&self, path: &str, body: impl Into<Bytes>) -> http::Request<Bytes> {
        http::Request::post(path)
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap()
    }

    pub fn get(&self, path: &str) -> http::Request<Bytes> {
        http::Request::get(path)
            .header("authorization", format!("Bearer {}", self.key))
            .body(Bytes::new())
            .unwrap()
    }

    /// A captured request replayed under `/api/ai-proxy` with its own
    /// headers, the key in `key_header` (`authorization` as a bearer).
    pub fn replay(&self, captured: &CapturedRequest, key_header: &str) -> http::Request<Bytes> {
        let path = format!("/api/ai-proxy{}", captured.path);
        let mut b = http::Request::builder()
            .method(captured.method.as_str())
            .uri(path);
        for (name, value) in captured.replayable_headers() {
            b = b.header(name, value);
        }
        let value = if key_header == "authorization" {
            format!("Bearer {}", self.key)
        } else {
            self.key.clone()
        };
        b.header(key_header, value)
            .body(Bytes::from(captured.body.clone()))
            .unwrap()
    }

    /// Waits for open streams and the usage writer, then returns every
    /// usage record.
    pub async fn records(&self) -> Vec<UsageRecord> {
        self.gateway.shutdown().await;
        self.store.usage_records()
    }
}

pub async fn text(resp: http::Response<GatewayBody>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub async fn json(resp: http::Response<GatewayBody>) -> Value {
    let t = text(resp).await;
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
}

/// The JSON of every `data:` line of an SSE text (`[DONE]` left out).
pub fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| d.trim() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// The text of chat chunks, joined.
pub fn chat_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

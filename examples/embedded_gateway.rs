//! Embeds the AiCarpool core with its in-memory defaults and serves one
//! streamed Claude request through it to a local mock upstream.
//!
//! ```sh
//! cargo run -p aicarpool-examples --example embedded_gateway
//! ```
//!
//! No database and no HTTP server: a carpool group with one Anthropic API
//! account and one member key live in a `MemoryStore`, and the request goes
//! straight into `Gateway::handle`, as any server would hand it over.

use std::sync::Arc;

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform};
use aicarpool_core::gateway::Gateway;
use aicarpool_core::id::new_id;
use aicarpool_core::key::{KeyRecord, MemberKey, Service};
use aicarpool_core::org::{Group, GroupRole, Membership, User};
use aicarpool_core::outbound::OutboundGuard;
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::store::{
    AccountStore, GroupStore, KeyStore, MemoryStore, UsageStore, UserStore,
};
use aicarpool_core::usage::{UsageQuery, UsageScope};
use aicarpool_testkit::MockUpstream;
use bytes::Bytes;
use http_body_util::BodyExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An upstream that speaks the Anthropic Messages API on 127.0.0.1.
    let upstream = MockUpstream::start("sk-ant-example").await?;

    let store = Arc::new(MemoryStore::new());
    let sealer = Sealer::new(&MasterKey::generate());
    let now = chrono::Utc::now();

    // A person, their carpool group, and the shared account.
    let alice = User {
        id: new_id(),
        email: "alice@example.com".into(),
        name: "Alice".into(),
        password_hash: String::new(),
        is_system_admin: false,
        created_at: now,
    };
    store.create_user(&alice).await?;
    let group = Group {
        id: new_id(),
        name: "weekend-hackers".into(),
        enterprise_id: None,
        department_id: None,
        max_members: None,
        limits: Default::default(),
        fair_share: Default::default(),
        fare_split: Default::default(),
        created_by: alice.id.clone(),
        created_at: now,
    };
    let owner = Membership {
        group_id: group.id.clone(),
        user_id: alice.id.clone(),
        role: GroupRole::Owner,
        share_weight: aicarpool_core::carpool::DEFAULT_SHARE_WEIGHT,
        joined_at: now,
    };
    store.create_group(&group, &owner).await?;
    let account_id = new_id();
    let credentials = Credentials {
        api_key: Some("sk-ant-example".into()),
        ..Default::default()
    };
    store
        .create_account(&Account {
            id: account_id.clone(),
            name: "team-api-key".into(),
            platform: Platform::ClaudeApi,
            preset: None,
            base_url: Some(upstream.url.clone()),
            owner: AccountOwner::Group(group.id.clone()),
            models: vec![],
            model_map: Default::default(),
            serves: Vec::new(),
            priority: 50,
            weight: 1,
            max_concurrency: None,
            proxy: None,
            enabled: true,
            // Sealed at rest; only the gateway opens it, in memory.
            credentials: sealer.seal(&account_id, &credentials)?,
            created_at: now,
            updated_at: now,
        })
        .await?;

    // Alice's personal key. Only its SHA-256 is stored.
    let key = MemberKey::generate(&group.id, &alice.id);
    let key_id = new_id();
    store
        .create_key(&KeyRecord {
            id: key_id.clone(),
            group_id: group.id.clone(),
            user_id: alice.id.clone(),
            name: "laptop".into(),
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
        })
        .await?;

    // Without a binding, a carpool group is served by the accounts it owns.
    // The mock upstream is on loopback, which upstream calls may not reach
    // unless the outbound guard allows it (as `AICARPOOL_UPSTREAM_ALLOW` does
    // for the server).
    let gateway = Gateway::builder(store.clone(), sealer)
        .outbound_guard(OutboundGuard::parse("127.0.0.0/8,::1")?)
        .build();
    let request = http::Request::post("/v1/messages")
        .header("x-api-key", key.expose())
        .header("anthropic-version", "2023-06-01")
        .body(Bytes::from(
            serde_json::json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 64,
                "stream": true,
                "messages": [{"role": "user", "content": "Say hello"}],
            })
            .to_string(),
        ))?;
    let response = gateway.handle(request).await;
    println!("status: {}", response.status());
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            print!("{}", String::from_utf8_lossy(&data));
        }
    }

    // Settle: flush the usage writer, then read the member's usage.
    gateway.shutdown().await;
    let report = store
        .usage_report(&UsageQuery {
            scope: UsageScope::Key(key_id),
            from: None,
            to: None,
            group_by: None,
        })
        .await?;
    let t = report.totals;
    println!(
        "usage: {} request(s), {} input, {} output, {} cache-write, {} cache-read tokens, ${:.6}",
        t.requests,
        t.input_tokens,
        t.output_tokens,
        t.cache_write_tokens,
        t.cache_read_tokens,
        t.cost_usd()
    );
    anyhow::ensure!(
        t.requests == 1 && t.output_tokens > 0,
        "usage was not recorded"
    );
    Ok(())
}

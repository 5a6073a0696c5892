//! The gateway: authenticate → admit → route → dispatch → stream → settle.
//!
//! [`Gateway::serve`] takes an `http::Request` with any body (read whole
//! after the key is checked, bounded by [`MAX_BODY_BYTES`] and by a budget
//! of bytes buffered across requests), [`Gateway::handle`] one whose
//! `Bytes` body is already read; both answer an
//! `http::Response<GatewayBody>` whose body streams as the upstream sends.
//! They are framework-free: axum, hyper or a test harness can mount them.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use aicarpool_core::gateway::Gateway;
//! use aicarpool_core::secret::{MasterKey, Sealer};
//! use aicarpool_core::store::MemoryStore;
//!
//! let gateway = Gateway::new(Arc::new(MemoryStore::new()), Sealer::new(&MasterKey::generate()));
//! let request = http::Request::post("/v1/messages")
//!     .header("x-api-key", "aicp_…")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
//!     .unwrap();
//! let response = gateway.serve(request).await;
//! # let _ = response;
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use moka::sync::Cache;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::{Account, Protocol};
use crate::fair::{MemoryLedger, WindowLedger};
use crate::key::{KeyHash, KeyRecord};
use crate::limit::{InMemoryLimiter, Limiter, StoreBaseline};
use crate::oauth::{
    ClaudeOAuth, ClaudeOAuthConfig, TokenEndpoint, TokenManager, TokenManagerConfig,
};
use crate::outbound::OutboundGuard;
use crate::pricing::Pricing;
use crate::provider::anthropic::AnthropicProvider;
use crate::provider::gemini::GeminiProvider;
use crate::provider::openai::OpenAiProvider;
use crate::provider::proxy::HttpClients;
use crate::router::{Clock, Router, SmartRouter, SystemClock};
use crate::secret::Sealer;
use crate::store::DynStore;
use crate::usage::{UsageWriter, UsageWriterConfig};

mod admission;
mod answer;
mod auth;
mod budget;
mod crossing;
mod dispatch;
mod error;
mod exchange;
mod failover;
mod fair_share;
mod first_byte;
mod gemini;
pub mod hops;
mod intake;
mod invalidation;
mod messages;
mod models;
mod openai;
mod paths;
mod probe;
mod relay;
mod routes;
mod routing;
pub mod telemetry;
mod waiting;

pub use error::{GatewayError, REFUSAL_HEADER};
pub use fair_share::{MemberWindow, WindowReport};
pub use invalidation::{Invalidation, InvalidationBus};
pub use paths::{protocol_of, AI_PROXY_PREFIX};
use routes::RouteTable;
pub use routing::{AccountHealthReport, LastErrorView, UnifiedWindowView, WindowView};

/// Largest request body accepted (32 MiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Response body type of the gateway.
pub type GatewayBody = UnsyncBoxBody<Bytes, BodyError>;

/// Error inside a response body stream.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// Timeouts and bounds of the request path.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Accounts tried per request at most.
    pub max_attempts: usize,
    /// How long a request may look for an account (the client's
    /// `x-stainless-timeout` shortens it): no attempt starts after it.
    pub request_deadline: Duration,
    /// TCP/TLS connect to an upstream.
    pub connect_timeout: Duration,
    /// A non-streamed request: from sending it to the upstream's whole
    /// answer being read (headers, then each chunk of the body). Past it
    /// the attempt fails over, since the client has had nothing yet.
    pub first_byte_timeout: Duration,
    /// A streamed request: from sending it to the answer's first event.
    /// Shorter, since a stream's first event comes at once when all is well.
    pub stream_first_byte_timeout: Duration,
    /// Longest silence between two chunks of a stream once it has
    /// started; upstream pings count as activity.
    pub idle_timeout: Duration,
    /// Longest an answer may take in all, from the request's arrival.
    pub total_timeout: Duration,
    /// After the client left: how long the upstream is still read for usage.
    pub drain_timeout: Duration,
    /// After the client left: how many bytes are still read for usage.
    pub drain_max_bytes: usize,
    /// Largest non-streaming upstream answer.
    pub max_response_bytes: usize,
    /// How long a key stays cached (writes invalidate it at once).
    pub key_cache_ttl: Duration,
    /// How long a group's routing table stays cached (writes invalidate it).
    pub route_cache_ttl: Duration,
    /// How long shutdown waits for open streams to settle.
    pub settle_timeout: Duration,
    /// Request bytes [`Gateway::serve`] buffers across all requests at
    /// once; past it, requests wait for room.
    pub max_buffered_body_bytes: usize,
    /// How long a request waits for room among the buffered bytes before
    /// it is answered 503 with `retry-after`.
    pub body_budget_wait: Duration,
    /// How often a stream waiting in line for a concurrency slot
    /// (`limits.queue`) is sent the protocol's ping.
    pub queue_ping_interval: Duration,
    pub usage_writer: UsageWriterConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            request_deadline: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(60),
            stream_first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            total_timeout: Duration::from_secs(1800),
            drain_timeout: Duration::from_secs(60),
            drain_max_bytes: 16 << 20,
            max_response_bytes: 64 << 20,
            key_cache_ttl: Duration::from_secs(300),
            route_cache_ttl: Duration::from_secs(60),
            settle_timeout: Duration::from_secs(5),
            max_buffered_body_bytes: 512 << 20,
            body_budget_wait: Duration::from_secs(2),
            queue_ping_interval: Duration::from_secs(5),
            usage_writer: UsageWriterConfig::default(),
        }
    }
}

/// Result of [`Gateway::test_account`]: what an admin may learn of the
/// upstream, and no more (see [`probe`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountTestReport {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// A short class: `blocked`, `unreachable`, `timeout`, `config`,
    /// `oauth`, `credentials_rejected`, `rate_limited`, `upstream_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The data plane as one value that servers mount. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: DynStore,
    sealer: Sealer,
    /// This deployment's hop mark (see [`hops`]).
    deployment: String,
    router: Arc<dyn Router>,
    pricing: Arc<Pricing>,
    anthropic: AnthropicProvider,
    gemini: GeminiProvider,
    openai: OpenAiProvider,
    /// Claude OAuth: endpoints and the token refresh coordinator.
    oauth: ClaudeOAuth,
    usage: UsageWriter,
    /// Member limits: the limiter and the group limits it is fed.
    admission: admission::Admission,
    /// Department and enterprise budget thresholds already recorded.
    budget_events: budget::BudgetEvents,
    keys: Cache<KeyHash, Arc<KeyRecord>>,
    routes: Cache<String, Arc<RouteTable>>,
    /// Bumped by every invalidation, so a lookup that raced a write does
    /// not put a stale entry back into a cache.
    cache_generation: AtomicU64,
    /// Tells the other instances what a write here made stale.
    invalidation_bus: Option<Arc<dyn InvalidationBus>>,
    /// In-flight counters by account id; they outlive route-table reloads.
    in_flight: Mutex<HashMap<String, Arc<AtomicU32>>>,
    /// Bytes of request bodies buffered across requests.
    intake: intake::BodyBudget,
    /// Open streams, so shutdown can wait for them to settle.
    streams: TaskTracker,
    /// Requests waiting for a concurrency slot.
    waiting: waiting::WaitingRoom,
    /// Members' use of subscription windows.
    fair: fair_share::FairShareState,
    shutdown: CancellationToken,
    config: GatewayConfig,
}

/// Builds a [`Gateway`] with non-default parts.
#[derive(Debug)]
pub struct GatewayBuilder {
    store: DynStore,
    sealer: Sealer,
    router: Arc<dyn Router>,
    pricing: Arc<Pricing>,
    config: GatewayConfig,
    http: Option<reqwest::Client>,
    outbound: OutboundGuard,
    limiter: Option<Arc<dyn Limiter>>,
    usage_writer: Option<UsageWriter>,
    claude_oauth: ClaudeOAuthConfig,
    token_refresh: TokenManagerConfig,
    invalidation_bus: Option<Arc<dyn InvalidationBus>>,
    window_ledger: Arc<dyn WindowLedger>,
    clock: Arc<dyn Clock>,
}

impl GatewayBuilder {
    pub fn router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = router;
        self
    }

    pub fn pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = Arc::new(pricing);
        self
    }

    /// The limiter of member limits (default: in memory, calendar windows
    /// in UTC, counters rebuilt from the store's usage records).
    pub fn limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The writer of usage records, when the caller made it (to build a
    /// limiter whose [`StoreBaseline`] writes it first); default: one
    /// spawned by [`build`](Self::build) with the configured tuning.
    pub fn usage_writer(mut self, writer: UsageWriter) -> Self {
        self.usage_writer = Some(writer);
        self
    }

    pub fn config(mut self, config: GatewayConfig) -> Self {
        self.config = config;
        self
    }

    /// The HTTP client for direct upstream calls (default: rustls, pooled,
    /// `connect_timeout` from the config, resolving through the outbound
    /// guard; see [`HttpClients::with_direct`] for what a custom one needs).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Which addresses upstream calls may reach beyond the default (public
    /// addresses only): see [`crate::outbound`].
    pub fn outbound_guard(mut self, guard: OutboundGuard) -> Self {
        self.outbound = guard;
        self
    }

    /// Where Claude's OAuth endpoints are (default: Claude's own).
    pub fn claude_oauth(mut self, config: ClaudeOAuthConfig) -> Self {
        self.claude_oauth = config;
        self
    }

    /// When OAuth tokens are refreshed (default: 5 minutes ahead).
    pub fn token_refresh(mut self, config: TokenManagerConfig) -> Self {
        self.token_refresh = config;
        self
    }

    /// Publishes every cache invalidation to the other instances sharing
    /// the store (default: none, one instance).
    pub fn invalidation_bus(mut self, bus: Arc<dyn InvalidationBus>) -> Self {
        self.invalidation_bus = Some(bus);
        self
    }

    /// Where members' use of subscription windows is kept for the fair
    /// share (default: in memory; a shared one makes instances agree).
    pub fn window_ledger(mut self, ledger: Arc<dyn WindowLedger>) -> Self {
        self.window_ledger = ledger;
        self
    }

    /// The clock the fair share reads windows by (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the gateway; starts the usage writer on the current runtime.
    pub fn build(self) -> Gateway {
        let config = self.config;
        let clients = Arc::new(match self.http {
            Some(http) => HttpClients::with_direct(http, self.outbound, config.connect_timeout),
            None => HttpClients::new(self.outbound, config.connect_timeout),
        });
        let oauth_config = Arc::new(self.claude_oauth);
        let tokens = Arc::new(TokenManager::new(
            Arc::new(crate::store::StoreCredentials(self.store.clone())),
            self.sealer.clone(),
            TokenEndpoint::new(oauth_config.clone(), clients.clone()),
            self.router.clone(),
            self.token_refresh,
        ));
        let usage_store: Arc<dyn crate::store::UsageStore> = self.store.clone();
        let usage = self
            .usage_writer
            .unwrap_or_else(|| UsageWriter::spawn(usage_store, config.usage_writer));
        let limiter = self.limiter.unwrap_or_else(|| {
            Arc::new(InMemoryLimiter::new(
                Arc::new(StoreBaseline::new(self.store.clone()).after_writing(usage.clone())),
                chrono_tz::Tz::UTC,
            ))
        });
        Gateway {
            inner: Arc::new(Inner {
                usage,
                admission: admission::Admission::new(limiter, config.route_cache_ttl),
                budget_events: budget::BudgetEvents::default(),
                keys: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(config.key_cache_ttl)
                    .build(),
                routes: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(config.route_cache_ttl)
                    .build(),
                store: self.store,
                deployment: self.sealer.deployment_id().to_string(),
                sealer: self.sealer,
                router: self.router,
                pricing: self.pricing,
                anthropic: AnthropicProvider::with_clients(clients.clone())
                    .with_oauth(tokens.clone()),
                gemini: GeminiProvider::new(clients.clone()),
                openai: OpenAiProvider::new(clients.clone()),
                oauth: ClaudeOAuth::new(oauth_config, clients, tokens),
                cache_generation: AtomicU64::new(0),
                invalidation_bus: self.invalidation_bus,
                in_flight: Mutex::default(),
                intake: intake::BodyBudget::new(
                    config.max_buffered_body_bytes,
                    MAX_BODY_BYTES,
                    config.body_budget_wait,
                ),
                streams: TaskTracker::new(),
                waiting: waiting::WaitingRoom::default(),
                fair: fair_share::FairShareState::new(self.window_ledger, self.clock),
                shutdown: CancellationToken::new(),
                config,
            }),
        }
    }
}

impl Gateway {
    /// A gateway with the [`SmartRouter`] and embedded prices.
    pub fn new(store: DynStore, sealer: Sealer) -> Self {
        Self::builder(store, sealer).build()
    }

    pub fn builder(store: DynStore, sealer: Sealer) -> GatewayBuilder {
        GatewayBuilder {
            store,
            sealer,
            router: Arc::new(SmartRouter::new()),
            pricing: Arc::new(Pricing::embedded()),
            config: GatewayConfig::default(),
            http: None,
            outbound: OutboundGuard::default(),
            limiter: None,
            usage_writer: None,
            claude_oauth: ClaudeOAuthConfig::default(),
            token_refresh: TokenManagerConfig::default(),
            invalidation_bus: None,
            window_ledger: Arc::new(MemoryLedger::new()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The windows of the group's subscription accounts, as this instance
    /// last saw them, each split among the group's members.
    pub async fn windows(&self, group_id: &str) -> Result<Vec<WindowReport>, GatewayError> {
        self.inner.window_reports(group_id).await
    }

    /// Serves one data-plane request as it arrives: the key is checked
    /// before the body is read (a stranger cannot fill the buffers), and
    /// the body is read within the budget of buffered bytes (see
    /// [`GatewayConfig::max_buffered_body_bytes`]), then [`handle`](Self::handle)d.
    pub async fn serve<B>(&self, req: http::Request<B>) -> http::Response<GatewayBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        let protocol = paths::protocol_of(req.uri().path());
        telemetry::observed(protocol, started, self.serve_read(req, protocol, started)).await
    }

    async fn serve_read<B>(
        &self,
        req: http::Request<B>,
        protocol: Protocol,
        started: Instant,
    ) -> http::Response<GatewayBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let (mut parts, body) = req.into_parts();
        // Unknown paths and methods are refused before anything is read, a
        // loop before its key costs a lookup, a stranger before the body.
        let route = match paths::route(&parts.method, parts.uri.path()) {
            Ok(r) => r,
            Err(no) => return paths::refusal(no, protocol),
        };
        if let Err(e) = self.inner.mark_hop(&mut parts.headers) {
            return e.into_response(protocol);
        }
        if let Err(e) = self.inner.authenticate(&parts.headers, &parts.uri).await {
            return e.into_response(protocol);
        }
        let (bytes, hold) = match self.inner.intake.read(&parts.headers, body).await {
            Ok(read) => read,
            Err(e) => return e.into_response(protocol),
        };
        let req = http::Request::from_parts(parts, bytes);
        let response = self.dispatch(route, protocol, req, started).await;
        // The answer has started: the gateway no longer holds the body.
        drop(hold);
        response
    }

    /// Serves one data-plane request: Anthropic `…/messages`, and under
    /// [`AI_PROXY_PREFIX`] the Gemini and OpenAI APIs. Errors are written
    /// in the protocol of the path.
    pub async fn handle(&self, req: http::Request<Bytes>) -> http::Response<GatewayBody> {
        let started = Instant::now();
        let protocol = paths::protocol_of(req.uri().path());
        telemetry::observed(protocol, started, self.handle_read(req, protocol, started)).await
    }

    async fn handle_read(
        &self,
        mut req: http::Request<Bytes>,
        protocol: Protocol,
        started: Instant,
    ) -> http::Response<GatewayBody> {
        let route = match paths::route(req.method(), req.uri().path()) {
            Ok(r) => r,
            Err(no) => return paths::refusal(no, protocol),
        };
        if let Err(e) = self.inner.mark_hop(req.headers_mut()) {
            return e.into_response(protocol);
        }
        self.dispatch(route, protocol, req, started).await
    }

    /// A routed, hop-marked request to its protocol's handler.
    async fn dispatch(
        &self,
        route: paths::DataRoute,
        protocol: Protocol,
        req: http::Request<Bytes>,
        started: Instant,
    ) -> http::Response<GatewayBody> {
        use paths::DataRoute;
        let inner = &self.inner;
        let served = match route {
            DataRoute::Messages(endpoint) => messages::serve(inner, endpoint, req, started).await,
            DataRoute::Gemini(call) => gemini::serve(inner, call, req, started).await,
            DataRoute::Chat => openai::serve_chat(inner, req, started).await,
            DataRoute::Responses => openai::serve_responses(inner, req, started).await,
            DataRoute::ResponsesSocket => return openai::refuse_socket(),
            DataRoute::Models => models::serve(inner, &req, None).await,
            DataRoute::Model(id) => models::serve(inner, &req, Some(&id)).await,
        };
        served.unwrap_or_else(|e| e.into_response(protocol))
    }

    /// This deployment's id, as its hop mark carries it.
    pub fn deployment_id(&self) -> &str {
        &self.inner.deployment
    }

    /// Forgets a cached key so the next request sees the store, here and
    /// (with an invalidation bus) on every other instance.
    pub fn invalidate_key(&self, hash: &KeyHash) {
        self.invalidate(Invalidation::Key(*hash));
    }

    /// Forgets a group's cached binding, accounts and limits.
    pub fn invalidate_group(&self, group_id: &str) {
        self.invalidate(Invalidation::Group(group_id.to_owned()));
    }

    /// Forgets every cached routing table (an account changed).
    pub fn invalidate_routes(&self) {
        self.invalidate(Invalidation::Routes);
    }

    fn invalidate(&self, event: Invalidation) {
        self.apply_invalidation(&event);
        if let Some(bus) = &self.inner.invalidation_bus {
            bus.publish(&event);
        }
    }

    /// Drops what `event` made stale from this instance's caches only:
    /// for invalidations received from other instances.
    pub fn apply_invalidation(&self, event: &Invalidation) {
        let inner = &self.inner;
        if let Invalidation::AccountCooling {
            account_id,
            until_ms,
        } = event
        {
            // Router state, not a cache: the generation stays.
            let until = i64::try_from(*until_ms)
                .ok()
                .and_then(chrono::DateTime::from_timestamp_millis);
            if let Some(until) = until {
                inner.router.observe_cooling(account_id, until);
            }
            return;
        }
        inner.cache_generation.fetch_add(1, Ordering::AcqRel);
        match event {
            Invalidation::Key(hash) => inner.keys.invalidate(hash),
            Invalidation::Group(id) => {
                inner.routes.invalidate(id);
                inner.admission.forget_group(id);
            }
            Invalidation::Routes => inner.routes.invalidate_all(),
            Invalidation::All => {
                inner.keys.invalidate_all();
                inner.routes.invalidate_all();
                inner.admission.forget_all_groups();
            }
            Invalidation::AccountCooling { .. } => {}
        }
    }

    /// Claude OAuth: the configured endpoints, code exchange and the
    /// refresh coordinator.
    pub fn claude_oauth(&self) -> &ClaudeOAuth {
        &self.inner.oauth
    }

    /// The prices usage is charged at.
    pub fn pricing(&self) -> &Pricing {
        &self.inner.pricing
    }

    /// The limiter enforcing member limits (for reports of current use).
    pub fn limiter(&self) -> &Arc<dyn Limiter> {
        self.inner.admission.limiter()
    }

    /// Makes a minimal real call with the account's credentials.
    pub async fn test_account(&self, account: &Account) -> AccountTestReport {
        probe::test(&self.inner, account).await
    }

    /// Waits for open streams to settle (bounded), then writes all queued
    /// usage. Streams still open after the bound are ended and recorded
    /// as partial.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.streams.close();
        if tokio::time::timeout(inner.config.settle_timeout, inner.streams.wait())
            .await
            .is_err()
        {
            inner.shutdown.cancel();
            inner.streams.wait().await;
        }
        inner.usage.shutdown().await;
        inner.admission.limiter().flush().await;
    }
}

impl Inner {
    /// Refuses a request that looped or passed too many gateways, else
    /// puts the mark its upstream call carries on (providers forward it).
    fn mark_hop(&self, headers: &mut http::HeaderMap) -> Result<(), GatewayError> {
        let mark = hops::next_hop(headers, &self.deployment)?;
        headers.insert(hops::HOP_HEADER, mark);
        Ok(())
    }

    fn in_flight_counter(&self, account_id: &str) -> Arc<AtomicU32> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(account_id.to_owned()).or_default().clone()
    }
}

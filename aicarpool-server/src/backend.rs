//! Choosing the backends: the store from the database URL's scheme, the
//! limiter and the pending sign-ins from whether Redis is configured.
//!
//! One instance needs nothing but SQLite. Several instances behind a load
//! balancer share a PostgreSQL database (accounts, keys, usage) and a Redis
//! (limit counters, cache invalidations, pending Claude sign-ins, members'
//! use of subscription windows), and must
//! all use the same master key.

use std::sync::Arc;

use aicarpool_core::fair::{MemoryLedger, WindowLedger};
use aicarpool_core::limit::{InMemoryLimiter, Limiter, StoreBaseline, UsageBaseline};
use aicarpool_core::oauth::{InMemoryLoginStore, LoginStore};
use aicarpool_core::store::DynStore;
use aicarpool_core::usage::UsageWriter;
use anyhow::Context;

use crate::config::ServeConfig;

/// What kind of database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    /// The kind of `url`: `postgres://` and `postgresql://` are PostgreSQL;
    /// `sqlite:` URLs and plain file paths are SQLite.
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") || !url.contains("://") {
            Ok(Self::Sqlite)
        } else {
            let scheme = url.split("://").next().unwrap_or_default();
            anyhow::bail!(
                "unsupported database URL scheme `{scheme}`: use sqlite://path.db or postgres://…"
            )
        }
    }
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(config: &ServeConfig) -> anyhow::Result<DynStore> {
    let url = &config.database_url;
    // The URL may hold a password: errors name the kind of database only.
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => {
            if config.database_schema.is_some() {
                anyhow::bail!("AICARPOOL_DATABASE_SCHEMA applies to PostgreSQL only");
            }
            let store = aicarpool_store::SqliteStore::connect(url)
                .await
                .with_context(|| format!("opening the SQLite database {url}"))?;
            Ok(Arc::new(store))
        }
        DatabaseKind::Postgres => open_postgres(config).await,
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(config: &ServeConfig) -> anyhow::Result<DynStore> {
    use aicarpool_store::PostgresStore;
    let url = &config.database_url;
    let store = match &config.database_schema {
        Some(schema) => PostgresStore::connect_in_schema(url, schema).await,
        None => PostgresStore::connect(url).await,
    }
    .context("opening the PostgreSQL database")?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_config: &ServeConfig) -> anyhow::Result<DynStore> {
    anyhow::bail!("this build has no PostgreSQL support: rebuild with the `postgres` feature")
}

/// The limiter of member limits: shared through Redis when
/// `AICARPOOL_REDIS_URL` is set, else in this process. Either way its
/// counters start from the usage store, so a restart resets nobody.
pub async fn limiter(
    config: &ServeConfig,
    store: &DynStore,
    writer: UsageWriter,
) -> anyhow::Result<Arc<dyn Limiter>> {
    let baseline: Arc<dyn UsageBaseline> =
        Arc::new(StoreBaseline::new(store.clone()).after_writing(writer));
    match &config.redis_url {
        None => Ok(Arc::new(InMemoryLimiter::new(baseline, config.timezone))),
        Some(url) => redis_limiter(config, url, baseline).await,
    }
}

#[cfg(feature = "redis")]
async fn redis_limiter(
    config: &ServeConfig,
    url: &str,
    baseline: Arc<dyn UsageBaseline>,
) -> anyhow::Result<Arc<dyn Limiter>> {
    let limiter = aicarpool_store::RedisLimiter::connect(url, baseline, config.timezone)
        .await
        .context("connecting to Redis (AICARPOOL_REDIS_URL)")?
        .with_prefix(redis_name(config, "limit:"));
    Ok(Arc::new(limiter))
}

#[cfg(not(feature = "redis"))]
async fn redis_limiter(
    _config: &ServeConfig,
    _url: &str,
    _baseline: Arc<dyn UsageBaseline>,
) -> anyhow::Result<Arc<dyn Limiter>> {
    anyhow::bail!("this build has no Redis support: rebuild with the `redis` feature")
}

/// Where pending Claude sign-ins are kept: in Redis when
/// `AICARPOOL_REDIS_URL` is set, so `finish` may reach another instance
/// than `start`; else in this process.
pub async fn login_store(config: &ServeConfig) -> anyhow::Result<Arc<dyn LoginStore>> {
    match &config.redis_url {
        None => Ok(Arc::new(InMemoryLoginStore::new())),
        Some(url) => redis_login_store(config, url).await,
    }
}

#[cfg(feature = "redis")]
async fn redis_login_store(config: &ServeConfig, url: &str) -> anyhow::Result<Arc<dyn LoginStore>> {
    let store = aicarpool_store::RedisLoginStore::connect(url)
        .await
        .context("connecting to Redis for sign-in sessions (AICARPOOL_REDIS_URL)")?
        .with_prefix(redis_name(config, "oauth-login:"));
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis_login_store(
    _config: &ServeConfig,
    _url: &str,
) -> anyhow::Result<Arc<dyn LoginStore>> {
    anyhow::bail!("this build has no Redis support: rebuild with the `redis` feature")
}

/// Where members' use of subscription windows is kept for the fair share:
/// in Redis when `AICARPOOL_REDIS_URL` is set, so every instance splits a
/// window by the same counts; else in this process.
pub async fn window_ledger(config: &ServeConfig) -> anyhow::Result<Arc<dyn WindowLedger>> {
    match &config.redis_url {
        None => Ok(Arc::new(MemoryLedger::new())),
        Some(url) => redis_window_ledger(config, url).await,
    }
}

#[cfg(feature = "redis")]
async fn redis_window_ledger(
    config: &ServeConfig,
    url: &str,
) -> anyhow::Result<Arc<dyn WindowLedger>> {
    let ledger = aicarpool_store::RedisWindowLedger::connect(url)
        .await
        .context("connecting to Redis for the fair share (AICARPOOL_REDIS_URL)")?
        .with_prefix(redis_name(config, "window:"));
    Ok(Arc::new(ledger))
}

#[cfg(not(feature = "redis"))]
async fn redis_window_ledger(
    _config: &ServeConfig,
    _url: &str,
) -> anyhow::Result<Arc<dyn WindowLedger>> {
    anyhow::bail!("this build has no Redis support: rebuild with the `redis` feature")
}

/// With Redis: tells the other instances what a write here made stale, and
/// applies what they publish once the gateway exists.
#[derive(Debug, Clone)]
pub struct SharedCaches {
    #[cfg(feature = "redis")]
    bus: Option<aicarpool_store::RedisInvalidationBus>,
}

impl SharedCaches {
    pub async fn connect(config: &ServeConfig) -> anyhow::Result<Self> {
        #[cfg(feature = "redis")]
        {
            let bus = match &config.redis_url {
                Some(url) => {
                    let channel = redis_name(config, "invalidate");
                    Some(
                        aicarpool_store::RedisInvalidationBus::connect(url, &channel)
                            .await
                            .context("AICARPOOL_REDIS_URL")?,
                    )
                }
                None => None,
            };
            Ok(Self { bus })
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = config;
            Ok(Self {})
        }
    }

    /// The bus for the gateway builder, if there is one.
    pub fn bus(&self) -> Option<Arc<dyn aicarpool_core::gateway::InvalidationBus>> {
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.bus {
            return Some(Arc::new(bus.clone()));
        }
        None
    }

    /// Starts applying other instances' invalidations to `gateway`.
    pub fn listen(&self, gateway: &aicarpool_core::gateway::Gateway) {
        #[cfg(feature = "redis")]
        if let Some(bus) = &self.bus {
            let gateway = gateway.clone();
            bus.listen(move |event| gateway.apply_invalidation(event));
        }
        #[cfg(not(feature = "redis"))]
        let _ = gateway;
    }
}

/// Where this deployment's keys live in Redis unless configured.
#[cfg(feature = "redis")]
const REDIS_PREFIX: &str = "aicp:";

/// A key prefix or channel of this deployment in Redis.
#[cfg(feature = "redis")]
fn redis_name(config: &ServeConfig, name: &str) -> String {
    let prefix = config.redis_prefix.as_deref().unwrap_or(REDIS_PREFIX);
    format!("{prefix}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_kind_from_url() {
        assert_eq!(
            DatabaseKind::of("sqlite://a.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::of("sqlite::memory:").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::of("/var/lib/a.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::of("postgres://u:pw@db/x").unwrap(),
            DatabaseKind::Postgres
        );
        assert_eq!(
            DatabaseKind::of("postgresql://db/x").unwrap(),
            DatabaseKind::Postgres
        );
        let err = DatabaseKind::of("mysql://u:pw@db/x").unwrap_err();
        assert!(err.to_string().contains("`mysql`"), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}

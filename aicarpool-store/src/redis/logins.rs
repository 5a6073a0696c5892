//! Pending Claude sign-ins in Redis, so that `finish` may reach another
//! instance than `start`.
//!
//! One string per sign-in, `<prefix><id>`, written with `SET … PX` and
//! handed out with `GETDEL` (Redis ≥ 6.2): a single command, so of
//! concurrent finishes exactly one gets the session. What is stored is
//! already sealed by [`PendingLogins`](aicarpool_core::oauth::PendingLogins).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::oauth::{LoginStore, LoginStoreError};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;

use super::scrub;

/// Why a [`RedisLoginStore`] could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisLoginStoreError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL for sign-in sessions: {0}")]
    Url(String),
    /// No Tokio runtime to run the connection on.
    #[error("the Redis sign-in store needs a Tokio runtime")]
    NoRuntime,
    #[error("Redis for sign-in sessions at {target} is unreachable: {message}")]
    Unreachable { target: String, message: String },
}

/// Pending sign-ins shared by several gateway instances. Cheap to clone.
/// `Debug` shows where, never the URL (it may hold a password).
#[derive(Clone)]
pub struct RedisLoginStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    /// `host:port/db`, for messages.
    target: Arc<str>,
    /// The URL's password, scrubbed from every message that leaves.
    password: Option<Arc<str>>,
}

impl fmt::Debug for RedisLoginStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLoginStore")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLoginStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "aicp:oauth-login:";

    /// A store on the Redis at `url` (`redis://[:password@]host:port/db`,
    /// `rediss://` for TLS). The connection is made on first use and remade
    /// when lost; while Redis is away, sign-ins fail and say so.
    pub async fn connect(url: &str) -> Result<Self, RedisLoginStoreError> {
        let client = redis::Client::open(url)
            // A URL that does not parse may still hold a password.
            .map_err(|e| RedisLoginStoreError::Url(format!("{:?}", e.kind())))?;
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr(), info.redis_settings().db());
        let password: Option<Arc<str>> = info
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(Arc::from);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisLoginStoreError::NoRuntime);
        }
        // An owner waiting on a page: fail quickly rather than hang.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            RedisLoginStoreError::Unreachable {
                target: target.clone(),
                message: scrub(&e, password.as_deref()),
            }
        })?;
        Ok(Self {
            conn,
            prefix: Self::DEFAULT_PREFIX.into(),
            target: target.into(),
            password,
        })
    }

    /// Keys under `prefix` instead of [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    fn unavailable(&self, e: &RedisError) -> LoginStoreError {
        LoginStoreError::Unavailable(format!(
            "Redis at {}: {}",
            self.target,
            scrub(e, self.password.as_deref())
        ))
    }
}

#[async_trait]
impl LoginStore for RedisLoginStore {
    async fn put(&self, id: &str, sealed: Vec<u8>, ttl: Duration) -> Result<(), LoginStoreError> {
        // `PX 0` is an error in Redis; the shortest life is 1 ms.
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(id))
            .arg(sealed)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))
    }

    async fn take(&self, id: &str) -> Result<Option<Vec<u8>>, LoginStoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("GETDEL")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))
    }
}

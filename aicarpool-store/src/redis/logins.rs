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
use redis::RedisError;

use super::connection::{Connection, RedisConnectError};

/// Why a [`RedisLoginStore`] could not be set up.
pub type RedisLoginStoreError = RedisConnectError;

/// Pending sign-ins shared by several gateway instances. Cheap to clone.
/// `Debug` shows where, never the URL (it may hold a password).
#[derive(Clone)]
pub struct RedisLoginStore {
    redis: Connection,
    prefix: Arc<str>,
}

impl fmt::Debug for RedisLoginStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLoginStore")
            .field("target", &self.redis.target)
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
        Ok(Self {
            redis: Connection::open_lazy(url)?,
            prefix: Self::DEFAULT_PREFIX.into(),
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
            self.redis.target,
            self.redis.scrub(e)
        ))
    }
}

#[async_trait]
impl LoginStore for RedisLoginStore {
    async fn put(&self, id: &str, sealed: Vec<u8>, ttl: Duration) -> Result<(), LoginStoreError> {
        // `PX 0` is an error in Redis; the shortest life is 1 ms.
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.redis.conn.clone();
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
        let mut conn = self.redis.conn.clone();
        redis::cmd("GETDEL")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))
    }
}

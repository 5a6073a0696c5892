//! Opening Redis the one way every shared piece wants it: lazily (a Redis
//! that is down does not fail the start), failing fast while it is away
//! (requests get a clear error rather than hang), and with the URL's
//! password kept out of every message.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;

/// Why Redis could not be set up or did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisConnectError {
    /// The URL is not a Redis URL (only the kind of error is kept: the
    /// URL may hold a password).
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// No Tokio runtime to run the connection on.
    #[error("Redis needs a Tokio runtime")]
    NoRuntime,
    /// Redis did not answer.
    #[error("Redis at {target} is unreachable: {message}")]
    Unreachable { target: String, message: String },
}

/// A connection that reconnects by itself, and what messages may say
/// about it.
#[derive(Clone)]
pub(super) struct Connection {
    pub(super) conn: ConnectionManager,
    /// `host:port/db`, for messages; never the URL.
    pub(super) target: Arc<str>,
    /// The URL's password, scrubbed from every message that leaves.
    password: Option<Arc<str>>,
}

impl Connection {
    /// Connects in the background to the Redis at `url`
    /// (`redis://[:password@]host:port/db`, `rediss://` for TLS).
    pub(super) fn open_lazy(url: &str) -> Result<Self, RedisConnectError> {
        let client = redis::Client::open(url)
            .map_err(|e| RedisConnectError::Url(format!("{:?}", e.kind())))?;
        let info = client.get_connection_info();
        let target: Arc<str> = format!("{}/{}", info.addr(), info.redis_settings().db()).into();
        let password = info
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(Arc::from);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisConnectError::NoRuntime);
        }
        // A few quick retries, then the caller answers with an error.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            RedisConnectError::Unreachable {
                target: target.to_string(),
                message: scrub(&e, password.as_deref()),
            }
        })?;
        Ok(Self {
            conn,
            target,
            password,
        })
    }

    /// `e` as text, without the password.
    pub(super) fn scrub(&self, e: &RedisError) -> String {
        scrub(e, self.password.as_deref())
    }

    /// `e` as the error of a call that found Redis away.
    pub(super) fn unreachable(&self, e: &RedisError) -> RedisConnectError {
        RedisConnectError::Unreachable {
            target: self.target.to_string(),
            message: self.scrub(e),
        }
    }

    /// Checks that Redis answers.
    pub(super) async fn ping(&self) -> Result<(), RedisConnectError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.unreachable(&e))
    }
}

fn scrub(e: &RedisError, password: Option<&str>) -> String {
    let text = e.to_string();
    match password {
        Some(p) => text.replace(p, "***"),
        None => text,
    }
}

//! The PostgreSQL backend: one database shared by several gateway
//! instances.
//!
//! It keeps the SQLite backend's schema and semantics (the conformance
//! suite holds both to one contract); what differs is how writes stay
//! correct when they race in other processes. SQLite runs one writer at a
//! time, PostgreSQL runs them side by side at `READ COMMITTED`, so every
//! check-then-write is one conditional statement (invitation uses,
//! credential compare-and-swap, refresh leases: a concurrent `UPDATE`
//! re-checks its `WHERE` on the row it waited for) or takes row locks
//! first (deleting an enterprise).
//!
//! Opening applies the embedded migrations under sqlx's advisory lock, so
//! instances starting together migrate once. [`PostgresStore::connect_in_schema`]
//! keeps the tables in a schema of their own (created when missing): one
//! database can hold several deployments, or a test per schema.
//!
//! Each submodule holds the SQL of one storage trait; the rows it selects
//! are read into domain values by the mappers it shares with SQLite
//! ([`crate::codec::rows`]), through [`ReadRow`] for `PgRow`
//! (`codec.rs`).
//!
//! [`ReadRow`]: crate::codec::ReadRow

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::store::{HealthCheck, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{ConnectOptions, Connection, Executor};

mod accounts;
mod alerts;
mod audit;
mod codec;
mod credentials;
mod enterprise;
mod fares;
mod groups;
mod keys;
mod usage;
mod users;

use codec::db_err;

/// Connections per instance. Every request of the data plane reads a few
/// rows; writes are short. Several instances multiply this, so it stays
/// well under PostgreSQL's default `max_connections` (100).
const POOL_SIZE: u32 = 10;
/// Longest a connection (at start, or from the pool later) is waited for:
/// a database that does not answer fails the start or the request with a
/// clear error instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Held (for one transaction) while a schema is created: two instances
/// creating the same schema at once would otherwise collide.
const SCHEMA_LOCK: i64 = 0x4169_4361_7270_6f6f; // "AiCarpoo"

/// The longest identifier PostgreSQL keeps (longer ones are truncated).
const MAX_SCHEMA_LEN: usize = 63;

/// Why a database could not be opened. Messages never include the URL,
/// so a password in it stays out of logs.
#[derive(Debug, thiserror::Error)]
pub enum PostgresOpenError {
    /// The URL names another kind of database (only its scheme is kept).
    #[error("unsupported database URL scheme `{0}` (expected `postgres:` or `postgresql:`)")]
    Scheme(String),
    // The cause is the error's source, not repeated in its message.
    #[error("invalid PostgreSQL database URL")]
    Url(#[source] sqlx::Error),
    /// Schema names are limited to `[a-z_][a-z0-9_]*`, so they need no
    /// quoting anywhere (the name is not secret and is kept).
    #[error(
        "invalid schema name `{0}` (expected lower-case letters, digits and `_`, \
         at most 63, not starting with a digit)"
    )]
    Schema(String),
    #[error("cannot connect to the PostgreSQL database")]
    Connect(#[source] sqlx::Error),
    #[error("the PostgreSQL database did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot create or select the database schema")]
    CreateSchema(#[source] sqlx::Error),
    #[error("cannot bring the database schema up to date")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A [`Store`](aicarpool_core::store::Store) in a PostgreSQL database.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url`
    /// (`postgres://user:password@host:5432/database`) and applies pending
    /// migrations. Tables live where the connection's `search_path` puts
    /// them (`public` by default).
    pub async fn connect(url: &str) -> Result<Self, PostgresOpenError> {
        Self::open(url, None).await
    }

    /// Like [`connect`](Self::connect), with every table in `schema`: the
    /// schema is created when missing and every pooled connection
    /// searches only it.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, PostgresOpenError> {
        if !is_plain_identifier(schema) {
            return Err(PostgresOpenError::Schema(schema.to_owned()));
        }
        Self::open(url, Some(schema)).await
    }

    async fn open(url: &str, schema: Option<&str>) -> Result<Self, PostgresOpenError> {
        let options = parse_url(url)?;
        // The schema and the migrations are set up on a connection of their
        // own, which is then closed: closing ends its session, and with it
        // the migration lock even when a migration failed halfway.
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| PostgresOpenError::Timeout(CONNECT_TIMEOUT))?
            .map_err(PostgresOpenError::Connect)?;
        let prepared = prepare(&mut conn, schema).await;
        // The outcome that matters is `prepared`; a failed goodbye to the
        // server only means the session ends when the socket does.
        let _ = conn.close().await;
        prepared?;

        let mut pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT);
        if let Some(schema) = schema {
            let set_path: Arc<str> = search_path_sql(schema).into();
            pool = pool.after_connect(move |conn, _| {
                let set_path = Arc::clone(&set_path);
                Box::pin(async move { conn.execute(&*set_path).await.map(drop) })
            });
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(PostgresOpenError::Connect)?;
        Ok(Self { pool })
    }

    /// The connection pool, for callers that need SQL the traits lack.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Checks the scheme before parsing, so that a URL of another database is
/// reported as such (and never echoed: it may hold a password).
fn parse_url(url: &str) -> Result<PgConnectOptions, PostgresOpenError> {
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(PostgresOpenError::Scheme(scheme.to_owned()));
        }
    }
    PgConnectOptions::from_str(url).map_err(PostgresOpenError::Url)
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes: a name PostgreSQL takes as is,
/// quoted or not.
fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= MAX_SCHEMA_LEN
}

/// Only the schema, so tables cannot resolve to another schema's (the
/// system catalog is always searched first anyway).
fn search_path_sql(schema: &str) -> String {
    format!("SET search_path TO \"{schema}\"")
}

/// Creates `schema` if missing, points `conn` at it, and migrates.
async fn prepare(conn: &mut PgConnection, schema: Option<&str>) -> Result<(), PostgresOpenError> {
    if let Some(schema) = schema {
        create_schema(conn, schema)
            .await
            .map_err(PostgresOpenError::CreateSchema)?;
        conn.execute(search_path_sql(schema).as_str())
            .await
            .map_err(PostgresOpenError::CreateSchema)?;
    }
    // sqlx holds a database-wide advisory lock while it migrates: of
    // several instances starting together, one migrates and the others
    // then find nothing left to do.
    sqlx::migrate!("migrations/postgres").run(conn).await?;
    Ok(())
}

async fn create_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    // `CREATE SCHEMA IF NOT EXISTS` is not safe against itself running in
    // another session (one of them fails on the catalog's unique index),
    // hence the lock. Asking first also spares a role without `CREATE` on
    // the database when the schema was made for it.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        tx.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
            .await?;
    }
    tx.commit().await
}

#[async_trait]
impl HealthCheck for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(db_err)
    }
}

impl PostgresStore {
    /// The row `sql` finds for `args` (its parameters, in order), mapped by
    /// `map`.
    async fn fetch_one<T>(
        &self,
        sql: &str,
        args: &[&str],
        map: fn(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let mut query = sqlx::query(sql);
        for a in args {
            query = query.bind(*a);
        }
        let row = query.fetch_optional(&self.pool).await.map_err(db_err)?;
        row.map(|r| map(&r)).transpose()
    }

    /// Every row `sql` finds for `args` (its parameters, in order), mapped
    /// by `map`.
    async fn fetch_many<T>(
        &self,
        sql: &str,
        args: &[&str],
        map: fn(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let mut query = sqlx::query(sql);
        for a in args {
            query = query.bind(*a);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(map).collect()
    }
}

/// Fails with `NotFound` when a statement touched no row.
fn affected(result: PgQueryResult) -> StoreResult<()> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn schema_names_need_no_quoting() {
        for ok in ["aicarpool", "_x", "t_0123", &"a".repeat(63)] {
            assert!(is_plain_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "0abc",
            "Public",
            "a-b",
            "a b",
            "x\"; DROP SCHEMA public; --",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_plain_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn urls_of_other_databases_are_refused_without_echo() {
        for (url, scheme) in [
            ("sqlite://aicarpool.db", "sqlite"),
            ("mysql://root:hunter2@db/x", "mysql"),
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(
                matches!(err, PostgresOpenError::Scheme(ref s) if s == scheme),
                "{err:?}"
            );
            assert!(!format!("{err} {err:?}").contains("hunter2"));
        }
        let err = parse_url("hunter2").unwrap_err();
        assert!(matches!(err, PostgresOpenError::Url(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        assert!(parse_url("postgresql://u:p@localhost/db").is_ok());
        assert!(parse_url("postgres:///db?host=/run/postgresql").is_ok());
    }
}

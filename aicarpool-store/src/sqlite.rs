//! The SQLite backend.
//!
//! Each submodule holds the SQL of one storage trait (statements,
//! transactions, SQLite's `?` placeholders and `rowid` ordering); the
//! rows it selects are read into domain values by the mappers it shares
//! with PostgreSQL ([`crate::codec::rows`]), through [`ReadRow`] for
//! `SqliteRow` (`codec.rs`).
//!
//! [`ReadRow`]: crate::codec::ReadRow

use std::os::unix::fs::OpenOptionsExt;
use std::str::FromStr;
use std::time::Duration;

use aicarpool_core::store::{HealthCheck, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

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

/// Connections in the pool of a file database. SQLite lets readers run in
/// parallel under WAL; writers take turns (see `busy_timeout`).
const POOL_SIZE: u32 = 8;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    /// The URL names another kind of database (only its scheme is kept).
    #[error("unsupported database URL scheme `{0}` (expected `sqlite:`)")]
    Scheme(String),
    // The cause is the error's source, not repeated in its message.
    #[error("invalid SQLite database URL")]
    Url(#[source] sqlx::Error),
    #[error("cannot open the SQLite database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot make the SQLite database file private")]
    Permissions(#[source] std::io::Error),
    #[error("cannot bring the database schema up to date")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Creates the database file readable by its owner only, and makes an
/// existing one (and its WAL and shared-memory files) so. The file holds
/// sealed credentials and key hashes; SQLite gives the WAL and SHM files
/// it creates later the database file's mode.
fn make_private(db: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)?;
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    for path in [db.as_os_str().to_owned(), wal, shm] {
        match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A [`Store`](aicarpool_core::store::Store) in an SQLite database.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies
    /// pending migrations. `url` is `sqlite://path/to/file.db`,
    /// `sqlite::memory:`, or a plain file path.
    pub async fn connect(url: &str) -> Result<Self, StoreOpenError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(StoreOpenError::Url)?
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreOpenError::Scheme(scheme.to_owned()));
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let mut options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let mut pool = SqlitePoolOptions::new();
        if in_memory {
            // One connection that is never recycled: the database lives in it.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            make_private(options.get_filename()).map_err(StoreOpenError::Permissions)?;
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            pool = pool.max_connections(POOL_SIZE);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreOpenError::Connect)?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool, for callers that need SQL the traits lack.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Writes a consistent copy of the whole database to a new file at
    /// `to` (`VACUUM INTO`), while other connections, and other processes,
    /// go on reading and writing. The copy is readable by its owner only
    /// (it holds sealed credentials and key hashes). Fails when `to`
    /// exists.
    pub async fn backup_to(&self, to: &std::path::Path) -> StoreResult<()> {
        let target = to
            .to_str()
            .ok_or_else(|| StoreError::Backend("the backup path is not UTF-8".into()))?;
        // Created empty and private first: VACUUM INTO fills an empty file.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| StoreError::Backend(format!("creating the backup file: {e}")))?;
        let result = sqlx::query("VACUUM INTO ?1")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(codec::db_err);
        if result.is_err() {
            let _ = std::fs::remove_file(to);
        }
        result.map(|_| ())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction that takes the write lock up front, so it
    /// waits for other writers (`busy_timeout`) instead of failing midway.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(codec::db_err)
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(codec::db_err)
    }
}

impl SqliteStore {
    /// The row `sql` finds for `args` (its parameters, in order), mapped by
    /// `map`.
    async fn fetch_one<T>(
        &self,
        sql: &str,
        args: &[&str],
        map: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let mut query = sqlx::query(sql);
        for a in args {
            query = query.bind(*a);
        }
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(codec::db_err)?;
        row.map(|r| map(&r)).transpose()
    }

    /// Every row `sql` finds for `args` (its parameters, in order), mapped
    /// by `map`.
    async fn fetch_many<T>(
        &self,
        sql: &str,
        args: &[&str],
        map: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let mut query = sqlx::query(sql);
        for a in args {
            query = query.bind(*a);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(codec::db_err)?;
        rows.iter().map(map).collect()
    }
}

/// Fails with `NotFound` when a statement touched no row.
fn affected(result: sqlx::sqlite::SqliteQueryResult) -> StoreResult<()> {
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

    #[tokio::test]
    async fn the_database_and_its_wal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carpool.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // A write makes the WAL and shared-memory files exist.
        sqlx::query("CREATE TABLE probe (x INTEGER)")
            .execute(store.pool())
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
        store.close().await;
    }

    #[tokio::test]
    async fn memory_database_survives_idle_connections() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.ping().await.unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'member_keys'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(tables, 1);
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(on, 1);
    }

    #[tokio::test]
    async fn bad_url_is_an_open_error() {
        let err = SqliteStore::connect("postgres://u:pw@db/x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreOpenError::Scheme(ref s) if s == "postgres"),
            "{err:?}"
        );
        assert!(!err.to_string().contains("pw"));
    }

    #[tokio::test]
    async fn closed_store_reports_backend_error() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.close().await;
        assert!(matches!(store.ping().await, Err(StoreError::Backend(_))));
    }
}

//! # aicarpool-store
//!
//! Durable storage for AiCarpool. Each backend implements the storage
//! traits of [`aicarpool_core::store`] and sits behind a cargo feature:
//!
//! | feature    | backend                                         | default |
//! |------------|-------------------------------------------------|---------|
//! | `sqlite`   | `SqliteStore` (embedded)                        | yes     |
//! | `postgres` | `PostgresStore` (several instances, one database) | no      |
//! | `redis`    | `RedisLimiter`, `RedisInvalidationBus`, `RedisLoginStore` (limits, caches and pending sign-ins shared across instances) | no |
//!
//! ## Opening a store
//!
//! [`SqliteStore::connect`] creates the database file when it is missing
//! and brings its schema up to date, so one call is all a server needs.
//! Hand the store to the rest of the system as a
//! [`DynStore`](aicarpool_core::store::DynStore) (`Arc<dyn Store>`):
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn open() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use aicarpool_core::store::DynStore;
//! use aicarpool_store::SqliteStore;
//!
//! let store: DynStore = Arc::new(SqliteStore::connect("sqlite://aicarpool.db").await?);
//! // `store` now goes wherever a `DynStore` is wanted: the gateway, the
//! // server's state, a background job.
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```
//!
//! `sqlite::memory:` gives a private in-memory database that lives as long
//! as the store, handy in tests.
//!
//! ## Opening a PostgreSQL store
//!
//! With the `postgres` feature, several gateway instances share one
//! database. `PostgresStore::connect` brings the schema up to date
//! (instances starting together take turns under an advisory lock) and
//! keeps the tables where the connection's `search_path` puts them;
//! `PostgresStore::connect_in_schema` keeps them in a schema of their own,
//! created when missing, so one database can hold several deployments (or
//! one test each):
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn open() -> Result<(), Box<dyn std::error::Error>> {
//! use aicarpool_core::store::HealthCheck;
//! use aicarpool_store::PostgresStore;
//!
//! let url = "postgres://aicarpool:secret@db.internal:5432/aicarpool";
//! let store = PostgresStore::connect_in_schema(url, "aicarpool").await?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Writes that race across instances (invitation uses, credential
//! compare-and-swap, refresh leases) are single conditional statements, so
//! they hold there as they do in SQLite. Open errors never include the
//! URL, so a password in it stays out of logs.
//!
//! ## What is stored how
//!
//! Timestamps are kept to the millisecond. Member keys are stored only as
//! the hex SHA-256 of the key; upstream credentials stay sealed (the store
//! never sees them in the clear). Usage reports are aggregated by the
//! database and equal [`UsageQuery::aggregate`](aicarpool_core::usage::UsageQuery::aggregate)
//! over the same records.
//!
//! Every backend passes the conformance suite in `aicarpool_core::testing`.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;

#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, StoreOpenError};

#[cfg(feature = "postgres")]
mod postgres;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresOpenError, PostgresStore};

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use redis::{
    InvalidationBusError, RedisConnectError, RedisInvalidationBus, RedisLimiter, RedisLimiterError,
    RedisLoginStore, RedisLoginStoreError, RedisWindowLedger,
};

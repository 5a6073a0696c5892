//! # aicarpool-store
//!
//! Durable storage for AiCarpool. Each backend implements the storage
//! traits of [`aicarpool_core::store`] and sits behind a cargo feature:
//!
//! | feature  | backend                   | default |
//! |----------|---------------------------|---------|
//! | `sqlite` | [`SqliteStore`] (embedded) | yes     |
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
//! ## What is stored how
//!
//! Timestamps are kept to the millisecond. Member keys are stored only as
//! the hex SHA-256 of the key; upstream credentials stay sealed (the store
//! never sees them in the clear). Usage reports are aggregated by the
//! database and equal [`UsageQuery::aggregate`](aicarpool_core::usage::UsageQuery::aggregate)
//! over the same records.
//!
//! Every backend passes the conformance suite in `aicarpool_core::testing`.

#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, StoreOpenError};

//! `aicarpool backup --to FILE`: a consistent copy of the SQLite database,
//! taken while the server runs (SQLite's `VACUUM INTO`). A PostgreSQL
//! database is backed up with `pg_dump`. Either way, keep the master key
//! with the backup: without it the sealed credentials cannot be opened.

use std::path::Path;

use anyhow::{bail, Context};

use crate::backend::DatabaseKind;
use crate::config::ServeConfig;

/// Copies the configured SQLite database to `to` (a new file, mode 0600);
/// returns its size in bytes.
pub async fn backup(config: &ServeConfig, to: &Path) -> anyhow::Result<u64> {
    let url = &config.database_url;
    if DatabaseKind::of(url)? == DatabaseKind::Postgres {
        bail!(
            "PostgreSQL databases are backed up with pg_dump (keep the master key with the dump)"
        );
    }
    if url.contains(":memory:") || url.contains("mode=memory") {
        bail!("an in-memory database has nothing to back up");
    }
    if to.exists() {
        bail!("{} exists; a backup never overwrites a file", to.display());
    }
    let store = aicarpool_store::SqliteStore::connect(url)
        .await
        .with_context(|| format!("opening the SQLite database {url}"))?;
    let copied = store.backup_to(to).await;
    store.close().await;
    copied.with_context(|| format!("writing the backup to {}", to.display()))?;
    Ok(std::fs::metadata(to)?.len())
}

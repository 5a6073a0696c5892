//! The storage conformance suite against SQLite, on disk and in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aicarpool_core::store::{DynStore, GroupStore, KeyStore, UserStore};
use aicarpool_core::testing;
use aicarpool_store::SqliteStore;

fn file_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("aicarpool.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_database_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&file_url(&dir)).await.unwrap();
    testing::run_all(&store).await;
    // Fresh ids everywhere: a second run on the same data passes too.
    testing::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_database_conforms() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    testing::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_behind_dyn_store() {
    let store: DynStore = Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap());
    testing::run_all(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suites_run_concurrently_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let first = SqliteStore::connect(&url).await.unwrap();
    let second = SqliteStore::connect(&url).await.unwrap();
    tokio::join!(testing::run_all(&first), testing::run_all(&second));
}

#[tokio::test]
async fn plain_path_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    testing::ping(&store).await;
    assert!(path.exists());
}

#[tokio::test]
async fn reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let store = SqliteStore::connect(&url).await.unwrap();
    let (owner, group) = testing::setup_group(&store).await;
    let key = testing::key(&group.id, &owner.id);
    store.create_key(&key).await.unwrap();
    store.close().await;
    drop(store);

    // Migrations already applied are skipped on the second open.
    let store = SqliteStore::connect(&url).await.unwrap();
    assert_eq!(store.user(&owner.id).await.unwrap(), Some(owner.clone()));
    assert_eq!(store.group(&group.id).await.unwrap(), Some(group.clone()));
    assert_eq!(
        store.key_by_hash(&key.key_hash.unwrap()).await.unwrap(),
        Some(key)
    );
    testing::run_all(&store).await;
}

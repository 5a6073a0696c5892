#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `RedisLoginStore` against a real Redis: pending sign-ins handed out
//! once across instances, expiring, and sealed.
//!
//! Set `AICARPOOL_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`) to run
//! them; without it they print that they were skipped. Every test keeps
//! its keys under a prefix of its own and deletes them at the end.

use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::id::new_id;
use aicarpool_core::oauth::{ClaudeOAuthConfig, LoginStore, OAuthError, PendingLogins};
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_store::RedisLoginStore;

fn redis_url() -> Option<String> {
    let url = std::env::var("AICARPOOL_TEST_REDIS_URL").ok()?;
    (!url.is_empty()).then_some(url)
}

/// The test Redis, or skip the test.
macro_rules! redis_or_skip {
    () => {
        match redis_url() {
            Some(url) => url,
            None => {
                println!("skipped: AICARPOOL_TEST_REDIS_URL is not set");
                return;
            }
        }
    };
}

/// A prefix no other run uses.
fn fresh_prefix() -> String {
    format!("aicp-test:{}:oauth-login:", new_id())
}

async fn store(url: &str, prefix: &str) -> RedisLoginStore {
    RedisLoginStore::connect(url)
        .await
        .unwrap()
        .with_prefix(prefix)
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn keys(url: &str, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn(url).await)
        .await
        .unwrap()
}

/// Checks that every key left under `prefix` expires, then deletes them.
async fn clean_up(url: &str, prefix: &str) {
    let mut c = conn(url).await;
    let keys = keys(url, prefix).await;
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl != -1, "{key} never expires");
    }
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn put_then_take_once_under_the_prefix() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let s = store(&url, &prefix).await;
    s.put("a", b"sealed".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(keys(&url, &prefix).await, vec![format!("{prefix}a")]);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}a"))
        .query_async(&mut conn(&url).await)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");

    assert_eq!(s.take("b").await.unwrap(), None);
    assert_eq!(s.take("a").await.unwrap(), Some(b"sealed".to_vec()));
    assert_eq!(s.take("a").await.unwrap(), None);
    assert!(keys(&url, &prefix).await.is_empty());
    clean_up(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_twenty_concurrent_takes_exactly_one_wins() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    // Two "instances", each with its own connection.
    let (a, b) = (store(&url, &prefix).await, store(&url, &prefix).await);
    for round in 0..5 {
        let id = format!("session-{round}");
        a.put(&id, vec![round; 64], Duration::from_secs(60))
            .await
            .unwrap();
        let takes: Vec<_> = (0..20)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                let id = id.clone();
                tokio::spawn(async move { s.take(&id).await.unwrap() })
            })
            .collect();
        let mut won = Vec::new();
        for t in takes {
            won.extend(t.await.unwrap());
        }
        assert_eq!(won, vec![vec![round; 64]], "round {round}");
    }
    clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn entries_expire() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let s = store(&url, &prefix).await;
    s.put("short", vec![1], Duration::from_millis(50))
        .await
        .unwrap();
    // Zero is kept for the shortest time Redis allows, not refused.
    s.put("zero", vec![2], Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(s.take("short").await.unwrap(), None);
    assert_eq!(s.take("zero").await.unwrap(), None);
    assert!(keys(&url, &prefix).await.is_empty());
    clean_up(&url, &prefix).await;
}

/// A sign-in started on one instance finishes on another; the session is
/// then used up for both, and another caller cannot use it up.
#[tokio::test]
async fn a_sign_in_started_on_one_instance_finishes_on_another() {
    let url = redis_or_skip!();
    let prefix = fresh_prefix();
    let key = MasterKey::generate();
    let ttl = Duration::from_secs(60);
    let instance =
        |s: RedisLoginStore| PendingLogins::<String>::new(Arc::new(s), Sealer::new(&key), ttl);
    let a = instance(store(&url, &prefix).await);
    let b = instance(store(&url, &prefix).await);
    let proxy = "http://user:hunter2@proxy.test:3128".to_owned();
    let started = a
        .start(&ClaudeOAuthConfig::default(), "alice", proxy.clone())
        .await
        .unwrap();
    let stored = keys(&url, &prefix).await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&started.session_id));
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&stored[0])
        .query_async(&mut conn(&url).await)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("hunter2"));

    assert!(matches!(
        b.take(&started.session_id, "mallory", None).await,
        Err(OAuthError::UnknownSession)
    ));
    let login = b.take(&started.session_id, "alice", None).await.unwrap();
    assert_eq!(login.context, proxy);
    assert!(!String::from_utf8_lossy(&raw).contains(login.pkce.verifier()));
    assert!(matches!(
        a.take(&started.session_id, "alice", None).await,
        Err(OAuthError::UnknownSession)
    ));
    clean_up(&url, &prefix).await;
}

/// Needs no Redis: the store never says its password, in `Debug` or in
/// the error of a Redis it cannot reach.
#[tokio::test]
async fn the_password_stays_out_of_debug_and_errors() {
    let s = RedisLoginStore::connect("redis://:hunter2@127.0.0.1:1/0")
        .await
        .unwrap();
    let debug = format!("{s:?}");
    assert!(
        debug.contains("127.0.0.1:1") && !debug.contains("hunter2"),
        "{debug}"
    );
    let err = s.take("x").await.unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let err = RedisLoginStore::connect("redis://:hunter2@[::1")
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

//! Where pending sign-ins are kept between `start` and `finish`.
//!
//! The store sees only sealed bytes under an opaque id: sealing, expiry
//! checks and who may finish stay in [`PendingLogins`](super::PendingLogins).
//! In memory for one instance; in a shared store (Redis) when several
//! instances sit behind one load balancer, so `finish` may reach another
//! instance than `start`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// Why a login store could not keep or hand out a sign-in. Messages never
/// hold what was stored, nor a password of the store's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginStoreError {
    #[error("sign-in sessions are unavailable: {0}")]
    Unavailable(String),
}

/// Keeps sealed pending sign-ins for a while, each handed out once.
#[async_trait]
pub trait LoginStore: Send + Sync + fmt::Debug {
    /// Keeps `sealed` under `id` for `ttl` (replacing what was there).
    async fn put(&self, id: &str, sealed: Vec<u8>, ttl: Duration) -> Result<(), LoginStoreError>;

    /// Removes and returns what is under `id`, if it has not expired.
    /// Atomic: of concurrent takes of one id, at most one gets it.
    async fn take(&self, id: &str) -> Result<Option<Vec<u8>>, LoginStoreError>;
}

/// Pending sign-ins kept at most in memory; the oldest go first, so a
/// flood of starts cannot grow the process without bound.
const MAX_PENDING: usize = 1000;

struct Entry {
    sealed: Vec<u8>,
    expires: Instant,
    seq: u64,
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Entry>,
    seq: u64,
}

/// The store of one instance: in this process, at most 1000 entries.
#[derive(Default)]
pub struct InMemoryLoginStore {
    table: Mutex<Table>,
}

impl fmt::Debug for InMemoryLoginStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLoginStore")
            .field("pending", &self.lock().by_id.len())
            .finish()
    }
}

impl InMemoryLoginStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl LoginStore for InMemoryLoginStore {
    async fn put(&self, id: &str, sealed: Vec<u8>, ttl: Duration) -> Result<(), LoginStoreError> {
        let now = Instant::now();
        let mut t = self.lock();
        t.by_id.retain(|_, e| e.expires > now);
        if t.by_id.len() >= MAX_PENDING && !t.by_id.contains_key(id) {
            if let Some(oldest) = t
                .by_id
                .iter()
                .min_by_key(|(_, e)| e.seq)
                .map(|(k, _)| k.clone())
            {
                t.by_id.remove(&oldest);
            }
        }
        t.seq += 1;
        let seq = t.seq;
        t.by_id.insert(
            id.to_owned(),
            Entry {
                sealed,
                expires: now + ttl,
                seq,
            },
        );
        Ok(())
    }

    async fn take(&self, id: &str) -> Result<Option<Vec<u8>>, LoginStoreError> {
        let entry = self.lock().by_id.remove(id);
        Ok(entry
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.sealed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn put_then_take_once() {
        let store = InMemoryLoginStore::new();
        store.put("a", b"one".to_vec(), MINUTE).await.unwrap();
        assert_eq!(store.take("b").await.unwrap(), None);
        assert_eq!(store.take("a").await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(store.take("a").await.unwrap(), None);
        assert!(!format!("{store:?}").contains("one"));
    }

    #[tokio::test]
    async fn expired_entries_are_gone() {
        let store = InMemoryLoginStore::new();
        store.put("a", b"x".to_vec(), Duration::ZERO).await.unwrap();
        assert_eq!(store.take("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_oldest_make_room() {
        let store = InMemoryLoginStore::new();
        for i in 0..=MAX_PENDING {
            store.put(&i.to_string(), vec![1], MINUTE).await.unwrap();
        }
        assert_eq!(store.lock().by_id.len(), MAX_PENDING);
        assert_eq!(store.take("0").await.unwrap(), None);
        assert!(store.take("1").await.unwrap().is_some());
        assert!(store
            .take(&MAX_PENDING.to_string())
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_of_concurrent_takes_wins() {
        let store = Arc::new(InMemoryLoginStore::new());
        store.put("a", vec![7], MINUTE).await.unwrap();
        let takes: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take("a").await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for t in takes {
            won += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(won, 1);
    }
}

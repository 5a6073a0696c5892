//! Sticky sessions: conversation → account, in a bounded moka cache with a
//! sliding TTL (every turn refreshes it).
//!
//! The value is the account's [`AccountHealth`], so a route decision finds
//! the sticky account's state without another lookup, and the eviction
//! listener can keep each account's count of bound sessions.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::health::AccountHealth;
use super::session::SessionKey;

/// What binding a session to an account changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The session had no account.
    New,
    /// It already was on this account.
    Same,
    /// It moved from another account.
    Moved,
}

#[derive(Debug, Clone)]
pub(super) struct StickyTable {
    cache: Cache<SessionKey, Arc<AccountHealth>>,
}

impl StickyTable {
    pub(super) fn new(capacity: u64, ttl: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .time_to_idle(ttl)
            .eviction_listener(|_key, account: Arc<AccountHealth>, _cause| {
                // Expired, evicted, replaced or removed: one session fewer.
                account.sticky_unbound();
            })
            .build();
        Self { cache }
    }

    /// The session's account; refreshes its TTL.
    pub(super) fn get(&self, key: &SessionKey) -> Option<Arc<AccountHealth>> {
        self.cache.get(key)
    }

    /// Binds the session to `account`.
    pub(super) fn bind(&self, key: SessionKey, account: &Arc<AccountHealth>) -> Bound {
        let previous = self.cache.get(&key);
        if previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, account)) {
            return Bound::Same;
        }
        account.sticky_bound();
        self.cache.insert(key, account.clone());
        if previous.is_some() {
            Bound::Moved
        } else {
            Bound::New
        }
    }

    /// Live sessions (after pending expirations are applied).
    pub(super) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Applies pending expirations, so per-account counts are current.
    pub(super) fn sync(&self) {
        self.cache.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_counts_sessions_per_account() {
        let table = StickyTable::new(100, Duration::from_secs(3600));
        let a = Arc::new(AccountHealth::new("a"));
        let b = Arc::new(AccountHealth::new("b"));
        assert_eq!(table.bind(SessionKey(1), &a), Bound::New);
        assert_eq!(table.bind(SessionKey(1), &a), Bound::Same);
        assert_eq!(table.bind(SessionKey(2), &a), Bound::New);
        assert_eq!(table.bind(SessionKey(1), &b), Bound::Moved);
        table.sync();
        assert_eq!(a.sticky_sessions(), 1);
        assert_eq!(b.sticky_sessions(), 1);
        assert_eq!(table.len(), 2);
        assert!(Arc::ptr_eq(&table.get(&SessionKey(1)).unwrap(), &b));
    }

    #[test]
    fn sessions_expire_after_idling() {
        let table = StickyTable::new(100, Duration::from_millis(50));
        let a = Arc::new(AccountHealth::new("a"));
        table.bind(SessionKey(1), &a);
        std::thread::sleep(Duration::from_millis(120));
        assert!(table.get(&SessionKey(1)).is_none());
        table.sync();
        assert_eq!(a.sticky_sessions(), 0);
    }
}

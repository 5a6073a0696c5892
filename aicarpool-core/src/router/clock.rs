//! Time as the router sees it.
//!
//! Health decisions compare "now" with cooling deadlines and with the
//! upstream's usage-window resets, which Anthropic sends as epoch seconds;
//! so the router reads wall-clock milliseconds through a [`Clock`]. The
//! simulation swaps in a [`VirtualClock`] to replay hours in milliseconds.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the UNIX epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to; shared by reference or `Arc`.
#[derive(Debug)]
pub struct VirtualClock {
    ms: AtomicU64,
}

impl VirtualClock {
    /// Starts at `start_ms` (epoch milliseconds).
    pub fn new(start_ms: u64) -> Self {
        Self {
            ms: AtomicU64::new(start_ms),
        }
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ms.fetch_add(by, Ordering::AcqRel);
    }

    /// Moves to `ms`; never backwards.
    pub fn set(&self, ms: u64) {
        self.ms.fetch_max(ms, Ordering::AcqRel);
    }
}

impl Default for VirtualClock {
    /// 2026-01-01T00:00:00Z, so epoch-second headers look real.
    fn default() -> Self {
        Self::new(1_767_225_600_000)
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::Acquire)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_forward() {
        let c = VirtualClock::new(1_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now_ms(), 3_000);
        c.set(2_000);
        assert_eq!(c.now_ms(), 3_000);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}

//! What an admitted request holds in Redis, and how it is given back.
//!
//! The [`Ticket`] methods are synchronous (a permit is settled or dropped
//! wherever the request ends, even in `Drop`), so the script call is built
//! at once, with the time of the call, and sent from a task on the current
//! Tokio runtime. Whatever never arrives expires with the lease TTL.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aicarpool_core::limit::{Settling, Spend, Ticket};
use tokio::sync::Notify;

use super::keys::ScopeKeys;
use super::{period_ttls, RedisLimiter, FINISH};

/// Background calls not yet done, for [`RedisLimiter::flush`].
#[derive(Debug, Default)]
pub(super) struct Pending {
    count: AtomicUsize,
    idle: Notify,
}

/// Counts one background call while alive.
struct PendingGuard(Arc<Pending>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Pending {
    fn enter(self: &Arc<Self>) -> PendingGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        PendingGuard(self.clone())
    }

    /// Returns once no background call is pending.
    pub(super) async fn idle(&self) {
        loop {
            let mut notified = pin!(self.idle.notified());
            // Registered before the count is read, so a call finishing in
            // between still wakes this waiter.
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One admitted request's share of the counters.
#[derive(Debug)]
pub(super) struct RedisTicket {
    limiter: RedisLimiter,
    id: String,
    /// Scopes that counted the request at admission.
    tracked: Vec<ScopeKeys>,
    /// Scopes that had no counters then; if they have some by settlement
    /// (a limit was set meanwhile), the spend is counted there.
    untracked: Vec<ScopeKeys>,
    reserve: Spend,
    /// Whether the concurrency lease is still held.
    lease: bool,
}

/// What a finishing call gives back and counts.
struct Finish {
    drop_lease: bool,
    drop_reservation: bool,
    count: Option<Spend>,
}

impl RedisTicket {
    pub(super) fn new(
        limiter: RedisLimiter,
        id: String,
        tracked: Vec<ScopeKeys>,
        untracked: Vec<ScopeKeys>,
        reserve: Spend,
    ) -> Self {
        Self {
            limiter,
            id,
            tracked,
            untracked,
            reserve,
            lease: true,
        }
    }

    fn finish(&self, what: &'static str, f: Finish) -> Settling {
        let now = self.limiter.clock.now();
        let bounds = self.limiter.calendar.bounds(now);
        let mut inv = FINISH.prepare_invoke();
        for keys in &self.tracked {
            for k in keys.finish_counted(&bounds) {
                inv.key(k);
            }
        }
        let untracked: &[ScopeKeys] = if f.count.is_some() {
            &self.untracked
        } else {
            &[]
        };
        for keys in untracked {
            for k in keys.finish_uncounted(&bounds) {
                inv.key(k);
            }
        }
        let spent = f.count.unwrap_or_default();
        let member = format!(
            "{}|{}|{}",
            self.id, self.reserve.tokens, self.reserve.cost_micro_usd
        );
        inv.arg(&self.id)
            .arg(member)
            .arg(i32::from(f.drop_lease))
            .arg(i32::from(f.drop_reservation))
            .arg(i32::from(f.count.is_some()))
            .arg(self.reserve.tokens)
            .arg(self.reserve.cost_micro_usd)
            .arg(spent.tokens)
            .arg(spent.cost_micro_usd)
            .arg(now.timestamp());
        for ttl in period_ttls(now, &bounds) {
            inv.arg(ttl);
        }
        inv.arg(self.tracked.len())
            .arg(untracked.len())
            .arg(self.limiter.flight_ttl_ms());

        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                ticket = %self.id,
                "no Tokio runtime to send the {what} of a limit permit to Redis; \
                 its lease and reservation expire by themselves"
            );
            return Settling::done();
        };
        // Counted before the task starts, so `flush` cannot miss it.
        let pending = self.limiter.pending.enter();
        let limiter = self.limiter.clone();
        let id = self.id.clone();
        Settling::in_background(runtime.spawn(async move {
            let _pending = pending;
            let mut conn = limiter.redis.conn.clone();
            if let Err(e) = inv.invoke_async::<i64>(&mut conn).await {
                tracing::warn!(
                    ticket = %id,
                    "sending the {what} of a limit permit to Redis ({}): {}; \
                     its lease and reservation expire by themselves",
                    limiter.redis.target,
                    limiter.redis.scrub(&e)
                );
            }
        }))
    }
}

impl Ticket for RedisTicket {
    fn settle(self: Box<Self>, actual: Spend) -> Settling {
        self.finish(
            "settlement",
            Finish {
                drop_lease: self.lease,
                drop_reservation: true,
                count: Some(actual),
            },
        )
    }

    fn release(self: Box<Self>) {
        // Nobody waits for a release (a drop): it completes on its own.
        drop(self.finish(
            "release",
            Finish {
                drop_lease: self.lease,
                drop_reservation: true,
                count: None,
            },
        ));
    }

    fn end_lease(&mut self) {
        if std::mem::take(&mut self.lease) {
            drop(self.finish(
                "end of lease",
                Finish {
                    drop_lease: true,
                    drop_reservation: false,
                    count: None,
                },
            ));
        }
    }
}

//! The in-memory limiter: counters in this process, rebuilt per scope from
//! the usage store the first time the scope is limited.
//!
//! Each scope has its own lock. Admission locks every scope of the request
//! in [`Scope`] order (so two requests can never wait on each other in a
//! cycle), checks them all, and only then takes the slots and reservations
//! in all of them: either every scope counts the request or none does.
//!
//! Scopes without limits and without counters are not tracked at all, so
//! unlimited use costs no store query and no memory. Once a scope has
//! counters, they are kept up to date even while its limits are lifted.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use async_trait::async_trait;
use chrono_tz::Tz;

use super::calendar::{Calendar, Clock, SystemClock, Window};
use super::remaining::Remaining;
use super::state::ScopeState;
use super::{
    AdmissionRequest, AdmitError, Limiter, Permit, Refusal, Scope, ScopeUsage, ScopedLimits,
    Settling, Spend, Ticket, UsageBaseline,
};

/// One scope's counters, loaded once from the baseline.
struct Slot {
    loaded: tokio::sync::OnceCell<()>,
    state: Mutex<ScopeState>,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("loaded", &self.loaded.initialized())
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<ScopeState>) -> MutexGuard<'_, ScopeState> {
    // A panic while counting leaves plain numbers behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Shared {
    slots: RwLock<HashMap<Scope, Arc<Slot>>>,
    baseline: Arc<dyn UsageBaseline>,
    calendar: Calendar,
    clock: Arc<dyn Clock>,
}

/// Limits enforced in this process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InMemoryLimiter {
    shared: Arc<Shared>,
}

impl InMemoryLimiter {
    /// Calendar windows in `tz`; counters rebuilt from `baseline`.
    pub fn new(baseline: Arc<dyn UsageBaseline>, tz: Tz) -> Self {
        Self::with_clock(baseline, tz, Arc::new(SystemClock))
    }

    /// The same, reading the time from `clock` (tests drive it).
    pub fn with_clock(baseline: Arc<dyn UsageBaseline>, tz: Tz, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: RwLock::default(),
                baseline,
                calendar: Calendar::new(tz),
                clock,
            }),
        }
    }

    pub fn time_zone(&self) -> Tz {
        self.shared.calendar.time_zone()
    }

    /// Scopes with counters in memory.
    pub fn tracked_scopes(&self) -> usize {
        self.shared
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Shared {
    fn existing(&self, scope: &Scope) -> Option<Arc<Slot>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots.get(scope).cloned()
    }

    fn slot(&self, scope: &Scope) -> Arc<Slot> {
        if let Some(s) = self.existing(scope) {
            return s;
        }
        let bounds = self.calendar.bounds(self.clock.now());
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(scope.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    loaded: tokio::sync::OnceCell::new(),
                    state: Mutex::new(ScopeState::new(&bounds)),
                })
            })
            .clone()
    }

    /// Adds the scope's history from the baseline, once. Concurrent
    /// requests for the same scope wait for the one load; a failed load is
    /// tried again by the next request.
    async fn ensure_loaded(&self, scope: &Scope, slot: &Slot) -> Result<(), AdmitError> {
        slot.loaded
            .get_or_try_init(|| async {
                let bounds = self.calendar.bounds(self.clock.now());
                let since = Window::ALL.map(|w| bounds.start(w));
                let spent = self
                    .baseline
                    .spent_since(scope, &since)
                    .await
                    .map_err(AdmitError::Unavailable)?;
                lock(&slot.state).load(&bounds, &spent);
                Ok(())
            })
            .await
            .map(|_| ())
    }
}

/// Of the refusals of several scopes, the one reported: the longer wait
/// wins, `None` (never) is the longest, and on a tie the earlier scope.
/// Public so that limiters outside this crate choose alike.
pub fn keep_longest(current: Option<Refusal>, next: Refusal) -> Refusal {
    match current {
        Some(cur) => match (cur.retry_after, next.retry_after) {
            (None, _) => cur,
            (_, None) => next,
            (Some(a), Some(b)) if b > a => next,
            _ => cur,
        },
        None => next,
    }
}

#[async_trait]
impl Limiter for InMemoryLimiter {
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Permit, AdmitError> {
        let shared = &self.shared;
        let mut tracked: Vec<(ScopedLimits<'_>, Arc<Slot>)> =
            Vec::with_capacity(request.scopes.len());
        let mut untracked = Vec::new();
        for s in request.scopes {
            if tracked.iter().any(|(t, _)| t.scope == s.scope) {
                continue;
            }
            let slot = if s.limits.is_unlimited() {
                shared.existing(s.scope)
            } else {
                Some(shared.slot(s.scope))
            };
            match slot {
                Some(slot) => tracked.push((s, slot)),
                None => untracked.push(s.scope.clone()),
            }
        }
        for (s, slot) in &tracked {
            shared.ensure_loaded(s.scope, slot).await?;
        }
        if tracked.is_empty() {
            return Ok(Permit::unlimited());
        }
        tracked.sort_by(|a, b| a.0.scope.cmp(b.0.scope));

        let reserve = request.reserve;
        let now = shared.clock.now();
        let bounds = shared.calendar.bounds(now);
        let mut remaining = Remaining::default();
        {
            let mut guards: Vec<_> = tracked.iter().map(|(_, slot)| lock(&slot.state)).collect();
            let mut refusal = None;
            for ((s, _), state) in tracked.iter().zip(guards.iter_mut()) {
                if let Err(r) = state.check(s.scope, s.limits, now, &bounds) {
                    refusal = Some(keep_longest(refusal, r));
                }
            }
            if let Some(r) = refusal {
                return Err(AdmitError::Refused(r));
            }
            for ((s, _), state) in tracked.iter().zip(guards.iter_mut()) {
                state.take(s.limits, reserve, now);
                state.headroom(s.scope, s.limits, now, &bounds, &mut remaining);
            }
        }
        let ticket = MemoryTicket {
            shared: shared.clone(),
            slots: tracked.into_iter().map(|(_, slot)| slot).collect(),
            untracked,
            reserve,
            lease: true,
        };
        Ok(Permit::new(Box::new(ticket), remaining))
    }

    async fn usage(&self, scope: &Scope) -> Result<ScopeUsage, AdmitError> {
        let shared = &self.shared;
        let slot = shared.slot(scope);
        shared.ensure_loaded(scope, &slot).await?;
        let now = shared.clock.now();
        let bounds = shared.calendar.bounds(now);
        let usage = lock(&slot.state).usage(now, &bounds);
        Ok(usage)
    }
}

/// The slots and reservation of one admitted request.
#[derive(Debug)]
struct MemoryTicket {
    shared: Arc<Shared>,
    slots: Vec<Arc<Slot>>,
    /// Scopes that had no counters at admission; if they have some by
    /// settlement (a limit was set meanwhile), the spend is counted there.
    untracked: Vec<Scope>,
    reserve: Spend,
    /// Whether the concurrency slot is still held.
    lease: bool,
}

impl Ticket for MemoryTicket {
    fn settle(self: Box<Self>, actual: Spend) -> Settling {
        let now = self.shared.clock.now();
        let bounds = self.shared.calendar.bounds(now);
        for slot in &self.slots {
            lock(&slot.state).settle(self.reserve, actual, self.lease, now, &bounds);
        }
        for scope in &self.untracked {
            // A slot still loading reads this request's record from the
            // store (it is queued after this): counting it here too would
            // count it twice.
            if let Some(slot) = self
                .shared
                .existing(scope)
                .filter(|s| s.loaded.initialized())
            {
                lock(&slot.state).count(actual, now, &bounds);
            }
        }
        Settling::done()
    }

    fn release(self: Box<Self>) {
        for slot in &self.slots {
            lock(&slot.state).release(self.reserve, self.lease);
        }
    }

    fn end_lease(&mut self) {
        if std::mem::take(&mut self.lease) {
            for slot in &self.slots {
                lock(&slot.state).end_lease();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::limit::{LimitKind, ManualClock, NoBaseline};
    use crate::limits::KeyLimits;
    use chrono::{DateTime, Utc};
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn limiter(clock: Arc<ManualClock>) -> InMemoryLimiter {
        InMemoryLimiter::with_clock(Arc::new(NoBaseline), Tz::UTC, clock)
    }

    fn spend(tokens: u64, cost: i64) -> Spend {
        Spend {
            tokens,
            cost_micro_usd: cost,
        }
    }

    #[tokio::test]
    async fn every_scope_must_allow_and_refusals_take_nothing() {
        let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
        let l = limiter(clock);
        let key = Scope::Key("k".into());
        let group = Scope::Group("g".into());
        let key_limits = KeyLimits {
            concurrency: 5,
            ..Default::default()
        };
        let mut group_limits = KeyLimits::default();
        group_limits.tokens.daily = 100;
        let req = |reserve| AdmissionRequest {
            scopes: vec![
                ScopedLimits {
                    scope: &group,
                    limits: &group_limits,
                },
                ScopedLimits {
                    scope: &key,
                    limits: &key_limits,
                },
            ],
            reserve,
        };
        let p = l.admit(req(spend(60, 0))).await.unwrap();
        assert_eq!(p.remaining().quota_tokens.unwrap().remaining, 40);
        assert_eq!(p.remaining().concurrency.unwrap().remaining, 4);
        let q = l.admit(req(spend(60, 0))).await.unwrap();
        // 120 reserved ≥ 100: the group refuses; the key counts nothing.
        let e = l.admit(req(spend(1, 0))).await.unwrap_err();
        let AdmitError::Refused(r) = e else { panic!() };
        assert_eq!(r.scope, group);
        assert_eq!(r.kind, LimitKind::Tokens(Window::Daily));
        assert_eq!(r.retry_after, Some(Duration::from_secs(2)), "in flight");
        assert_eq!(l.usage(&key).await.unwrap().in_flight, 2);
        p.settle(spend(30, 0));
        drop(q);
        let g = l.usage(&group).await.unwrap();
        assert_eq!(g.settled(Window::Daily).tokens, 30);
        assert_eq!(g.reserved, Spend::default());
        assert_eq!(l.usage(&key).await.unwrap().in_flight, 0);
    }

    #[tokio::test]
    async fn unlimited_scopes_are_not_tracked() {
        let l = limiter(Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z"))));
        let key = Scope::Key("k".into());
        let none = KeyLimits::default();
        let p = l
            .admit(AdmissionRequest {
                scopes: vec![ScopedLimits {
                    scope: &key,
                    limits: &none,
                }],
                reserve: spend(10, 10),
            })
            .await
            .unwrap();
        assert!(p.remaining().is_empty());
        assert_eq!(l.tracked_scopes(), 0);
    }

    /// A usage store that answers the load of `gated` once released, with
    /// the spend written by then; other scopes have no history.
    #[derive(Debug)]
    struct GatedBaseline {
        gated: Scope,
        asked: tokio::sync::Notify,
        release: tokio::sync::Notify,
        written: Mutex<Spend>,
    }

    #[async_trait]
    impl UsageBaseline for GatedBaseline {
        async fn spent_since(
            &self,
            scope: &Scope,
            since: &[DateTime<Utc>],
        ) -> Result<Vec<Spend>, String> {
            if *scope != self.gated {
                return Ok(vec![Spend::default(); since.len()]);
            }
            self.asked.notify_one();
            self.release.notified().await;
            let written = *self.written.lock().unwrap();
            Ok(vec![written; since.len()])
        }
    }

    /// A request admitted before its key had a limit, settling while the
    /// key's counters load: its record reaches the store before the load
    /// reads it, so the load counts it and the settlement must not.
    #[tokio::test]
    async fn a_settlement_during_the_first_load_is_counted_once() {
        let key = Scope::Key("k".into());
        let group = Scope::Group("g".into());
        let baseline = Arc::new(GatedBaseline {
            gated: key.clone(),
            asked: Default::default(),
            release: Default::default(),
            written: Default::default(),
        });
        let clock = Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z")));
        let l = InMemoryLimiter::with_clock(baseline.clone(), Tz::UTC, clock);
        let group_limits = KeyLimits {
            concurrency: 10,
            ..Default::default()
        };
        let mut key_limits = KeyLimits::default();
        key_limits.tokens.daily = 1_000;
        let admit = |key_limits: KeyLimits| {
            let (l, key, group, group_limits) =
                (l.clone(), key.clone(), group.clone(), group_limits.clone());
            async move {
                l.admit(AdmissionRequest {
                    scopes: vec![
                        ScopedLimits {
                            scope: &group,
                            limits: &group_limits,
                        },
                        ScopedLimits {
                            scope: &key,
                            limits: &key_limits,
                        },
                    ],
                    reserve: spend(50, 0),
                })
                .await
            }
        };
        // The group counts it; the key, without limits, does not.
        let early = admit(KeyLimits::default()).await.unwrap();
        let loading = tokio::spawn(admit(key_limits.clone()));
        baseline.asked.notified().await;
        early.settle(spend(100, 0)).await;
        *baseline.written.lock().unwrap() = spend(100, 0);
        baseline.release.notify_one();
        let second = loading.await.unwrap().unwrap();

        let daily = |u: ScopeUsage| u.settled(Window::Daily).tokens;
        assert_eq!(daily(l.usage(&key).await.unwrap()), 100);
        // Admitted once the key has counters: counted as usual.
        second.settle(spend(7, 0)).await;
        assert_eq!(daily(l.usage(&key).await.unwrap()), 107);
        assert_eq!(daily(l.usage(&group).await.unwrap()), 107);
    }

    #[tokio::test]
    async fn end_lease_frees_concurrency_but_keeps_the_reservation() {
        let l = limiter(Arc::new(ManualClock::new(at("2026-05-05T10:00:00Z"))));
        let key = Scope::Key("k".into());
        let limits = KeyLimits {
            concurrency: 1,
            ..Default::default()
        };
        let req = || AdmissionRequest {
            scopes: vec![ScopedLimits {
                scope: &key,
                limits: &limits,
            }],
            reserve: spend(10, 0),
        };
        let mut p = l.admit(req()).await.unwrap();
        assert!(l.admit(req()).await.is_err());
        p.end_lease();
        let u = l.usage(&key).await.unwrap();
        assert_eq!((u.in_flight, u.reserved.tokens), (0, 10));
        let second = l.admit(req()).await.unwrap();
        p.settle(spend(5, 0));
        let u = l.usage(&key).await.unwrap();
        assert_eq!((u.in_flight, u.reserved.tokens), (1, 10));
        drop(second);
        assert_eq!(l.usage(&key).await.unwrap().in_flight, 0);
    }
}

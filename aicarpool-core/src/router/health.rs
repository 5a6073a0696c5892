//! Per-account health: Healthy → Cooling(until, reason) → HalfOpen (one
//! probe at a time) → Healthy, plus NeedsAttention for refused credentials.
//!
//! The hot path (every route decision) only reads atomics; outcomes are
//! folded in under a per-account mutex, never a global one. Cooling ends by
//! itself: once `until` has passed the account is half-open, the next
//! request to it is the probe, and a success closes the circuit.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::window::{RateSignals, UnifiedWindow};
use super::Outcome;

/// How long each kind of failure benches an account.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// A 429 that names no time: first cooling, doubled on repeats…
    pub rate_limit_base: Duration,
    /// …up to this.
    pub rate_limit_max: Duration,
    /// A 529: first cooling, doubled on repeats up to `overload_max`.
    pub overload_base: Duration,
    pub overload_max: Duration,
    /// 5xx, timeouts and connect errors cool the account after this many…
    pub failure_threshold: usize,
    /// …within this window,
    pub failure_window: Duration,
    /// …for this long, doubled on repeats up to `failure_max`.
    pub failure_base: Duration,
    pub failure_max: Duration,
    /// Upper bound on a cooling the upstream names (a weekly window).
    pub max_cooling: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            rate_limit_base: Duration::from_secs(5),
            rate_limit_max: Duration::from_secs(300),
            overload_base: Duration::from_secs(30),
            overload_max: Duration::from_secs(300),
            failure_threshold: 3,
            failure_window: Duration::from_secs(60),
            failure_base: Duration::from_secs(30),
            failure_max: Duration::from_secs(300),
            max_cooling: Duration::from_secs(8 * 24 * 3600),
        }
    }
}

/// Why an account is not taking requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoolReason {
    RateLimited,
    Overloaded,
    /// Repeated 5xx, timeouts, connect errors or broken streams.
    Failing,
    /// 401/403, or an API key the upstream calls invalid: waits for an admin.
    CredentialsRejected,
}

impl CoolReason {
    fn code(self) -> u8 {
        match self {
            CoolReason::RateLimited => 1,
            CoolReason::Overloaded => 2,
            CoolReason::Failing => 3,
            CoolReason::CredentialsRejected => 4,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => CoolReason::RateLimited,
            2 => CoolReason::Overloaded,
            4 => CoolReason::CredentialsRejected,
            _ => CoolReason::Failing,
        }
    }
}

/// An account's state at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Cooling {
        until_ms: u64,
        reason: CoolReason,
    },
    /// Cooling is over; one probe request decides. `probing`: it is out.
    HalfOpen {
        probing: bool,
    },
    NeedsAttention,
}

impl HealthState {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Cooling { .. } => "cooling",
            HealthState::HalfOpen { .. } => "half_open",
            HealthState::NeedsAttention => "needs_attention",
        }
    }
}

/// The last failure seen on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub at_ms: u64,
    pub status: Option<u16>,
    pub message: String,
}

/// Everything known about an account, for the health endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    #[serde(skip)]
    pub state: HealthState,
    pub cooling_until_ms: Option<u64>,
    pub reason: Option<CoolReason>,
    pub last_error: Option<LastError>,
    /// Share of successes among the last (up to 64) counted outcomes.
    pub recent_success_rate: Option<f64>,
    pub recent_outcomes: u32,
    pub consecutive_cooldowns: u32,
    pub sticky_sessions: u64,
    pub unified: Option<UnifiedWindow>,
}

/// `blocked_until_ms` value of an account that needs an admin.
const NEEDS_ATTENTION: u64 = u64::MAX;

/// What [`AccountHealth::try_begin`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Healthy: go.
    Go,
    /// Half-open: this attempt is the probe; hand the token back after.
    Probe(u64),
    /// Not now.
    Refused(HealthState),
}

#[derive(Debug, Default)]
struct Detail {
    /// Cooling periods in a row without a success in between.
    streak: u32,
    /// When recent 5xx-style failures happened (epoch ms), oldest first.
    failures: Vec<u64>,
    last_error: Option<LastError>,
    /// Bit i = 1: the i-th most recent counted outcome was a success.
    recent: u64,
    recent_len: u32,
    unified: Option<UnifiedWindow>,
}

/// The live health of one account. Shared as `Arc`; cheap to read.
#[derive(Debug)]
pub struct AccountHealth {
    id: Arc<str>,
    /// 0: healthy; `NEEDS_ATTENTION`; else cooling until (epoch ms), after
    /// which the account is half-open.
    blocked_until_ms: AtomicU64,
    reason: AtomicU8,
    /// Token of the probe in flight, 0 when none.
    probe: AtomicU64,
    /// Soonest usage-window reset seen (epoch s), 0 = unknown.
    reset_hint_s: AtomicU64,
    /// The upstream warned until this window reset (epoch s).
    warning_until_s: AtomicU64,
    /// Sticky sessions bound to the account.
    sticky: AtomicI64,
    detail: Mutex<Detail>,
}

/// Probe tokens, unique per process so a late release cannot free a newer probe.
static NEXT_PROBE: AtomicU64 = AtomicU64::new(1);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl AccountHealth {
    pub fn new(id: &str) -> Self {
        Self {
            id: Arc::from(id),
            blocked_until_ms: AtomicU64::new(0),
            reason: AtomicU8::new(0),
            probe: AtomicU64::new(0),
            reset_hint_s: AtomicU64::new(0),
            warning_until_s: AtomicU64::new(0),
            sticky: AtomicI64::new(0),
            detail: Mutex::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn detail(&self) -> MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state at `now_ms`, from atomics only.
    pub fn state(&self, now_ms: u64) -> HealthState {
        match self.blocked_until_ms.load(Ordering::Acquire) {
            0 => HealthState::Healthy,
            NEEDS_ATTENTION => HealthState::NeedsAttention,
            until if now_ms < until => HealthState::Cooling {
                until_ms: until,
                reason: CoolReason::from_code(self.reason.load(Ordering::Acquire)),
            },
            _ => HealthState::HalfOpen {
                probing: self.probe.load(Ordering::Acquire) != 0,
            },
        }
    }

    /// Whether an attempt may go to the account now; in half-open state
    /// only one at a time, as the probe.
    pub fn try_begin(&self, now_ms: u64) -> Admission {
        match self.state(now_ms) {
            HealthState::Healthy => Admission::Go,
            HealthState::HalfOpen { .. } => {
                let token = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
                match self
                    .probe
                    .compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Admission::Probe(token),
                    Err(_) => Admission::Refused(HealthState::HalfOpen { probing: true }),
                }
            }
            other => Admission::Refused(other),
        }
    }

    /// Frees the probe slot taken with `token` (no-op if a newer probe holds it).
    pub fn release_probe(&self, token: u64) {
        let _ = self
            .probe
            .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Soonest usage-window reset seen, epoch seconds.
    pub fn reset_hint_s(&self) -> Option<u64> {
        Some(self.reset_hint_s.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }

    /// Whether the upstream asked to slow down and its window has not reset.
    pub fn warned(&self, now_ms: u64) -> bool {
        self.warning_until_s
            .load(Ordering::Relaxed)
            .saturating_mul(1000)
            > now_ms
    }

    pub fn sticky_sessions(&self) -> u64 {
        u64::try_from(self.sticky.load(Ordering::Relaxed)).unwrap_or(0)
    }

    pub(super) fn sticky_bound(&self) {
        self.sticky.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sticky_unbound(&self) {
        self.sticky.fetch_sub(1, Ordering::Relaxed);
    }

    fn cool(&self, d: &mut Detail, until_ms: u64, reason: CoolReason) {
        let current = self.blocked_until_ms.load(Ordering::Acquire);
        if current == NEEDS_ATTENTION {
            return;
        }
        // Never shorten a cooling already in force.
        self.reason.store(reason.code(), Ordering::Release);
        self.blocked_until_ms
            .store(until_ms.max(current), Ordering::Release);
        d.streak = d.streak.saturating_add(1);
        d.failures.clear();
    }

    /// `base` doubled for every cooling in a row, at most `max`.
    fn escalated(d: &Detail, base: Duration, max: Duration) -> u64 {
        let factor = 1u64 << d.streak.min(20);
        ms(base).saturating_mul(factor).min(ms(max))
    }

    /// Folds one attempt's outcome (and the limit signals of its answer)
    /// into the account's health.
    pub fn record(
        &self,
        now_ms: u64,
        outcome: &Outcome,
        signals: &RateSignals,
        policy: &HealthPolicy,
    ) {
        let mut d = self.detail();
        if let Some(u) = signals.unified {
            self.note_window(&mut d, u, now_ms);
        }
        let blocked = self.blocked_until_ms.load(Ordering::Acquire);
        // Cooling that is still running: a late answer to an attempt that
        // started earlier must not escalate it again.
        let cooling_now = blocked != 0 && blocked != NEEDS_ATTENTION && now_ms < blocked;
        let half_open = blocked != 0 && blocked != NEEDS_ATTENTION && now_ms >= blocked;
        let cap = now_ms.saturating_add(ms(policy.max_cooling));
        match outcome {
            Outcome::Success { .. } => {
                push_recent(&mut d, true);
                if blocked == 0 || half_open {
                    self.blocked_until_ms.store(0, Ordering::Release);
                    self.reason.store(0, Ordering::Release);
                    d.streak = 0;
                    d.failures.clear();
                }
            }
            Outcome::ClientError { .. } => {}
            Outcome::RateLimited => {
                push_recent(&mut d, false);
                d.last_error = Some(error(now_ms, Some(429), "rate limited".into()));
                match signals.rate_limited_until_ms(now_ms) {
                    Some(until) => {
                        let until = until.min(cap);
                        self.cool(&mut d, until, CoolReason::RateLimited);
                    }
                    None if !cooling_now => {
                        let wait =
                            Self::escalated(&d, policy.rate_limit_base, policy.rate_limit_max);
                        self.cool(&mut d, now_ms + wait, CoolReason::RateLimited);
                    }
                    None => {}
                }
            }
            Outcome::Overloaded => {
                push_recent(&mut d, false);
                d.last_error = Some(error(now_ms, Some(529), "overloaded".into()));
                if !cooling_now {
                    let wait = Self::escalated(&d, policy.overload_base, policy.overload_max);
                    self.cool(&mut d, now_ms + wait, CoolReason::Overloaded);
                }
            }
            Outcome::Failed { status, reason } => {
                push_recent(&mut d, false);
                d.last_error = Some(error(now_ms, *status, reason.clone()));
                if cooling_now || blocked == NEEDS_ATTENTION {
                    return;
                }
                let window_start = now_ms.saturating_sub(ms(policy.failure_window));
                d.failures.retain(|t| *t >= window_start);
                d.failures.push(now_ms);
                if half_open || d.failures.len() >= policy.failure_threshold.max(1) {
                    let wait = Self::escalated(&d, policy.failure_base, policy.failure_max);
                    self.cool(&mut d, now_ms + wait, CoolReason::Failing);
                }
            }
            Outcome::CredentialsRejected { status, reason } => {
                push_recent(&mut d, false);
                d.last_error = Some(error(now_ms, Some(*status), reason.clone()));
                self.reason
                    .store(CoolReason::CredentialsRejected.code(), Ordering::Release);
                self.blocked_until_ms
                    .store(NEEDS_ATTENTION, Ordering::Release);
            }
        }
    }

    /// Cools the account until `until_ms` because another instance was
    /// rate-limited on it: no backoff escalation and no failure counted,
    /// since no attempt of ours failed. A longer cooling in force and
    /// NeedsAttention stay as they are.
    pub fn observe_cooling(&self, now_ms: u64, until_ms: u64, policy: &HealthPolicy) {
        let until_ms = until_ms.min(now_ms.saturating_add(ms(policy.max_cooling)));
        let mut d = self.detail();
        let current = self.blocked_until_ms.load(Ordering::Acquire);
        if until_ms <= now_ms || current == NEEDS_ATTENTION || current >= until_ms {
            return;
        }
        self.reason
            .store(CoolReason::RateLimited.code(), Ordering::Release);
        self.blocked_until_ms.store(until_ms, Ordering::Release);
        d.last_error = Some(error(
            now_ms,
            Some(429),
            "rate limited (reported by another instance)".into(),
        ));
    }

    fn note_window(&self, d: &mut Detail, u: UnifiedWindow, now_ms: u64) {
        let now_s = now_ms / 1000;
        let hint = u.soonest_reset().filter(|s| *s > now_s).unwrap_or(0);
        self.reset_hint_s.store(hint, Ordering::Relaxed);
        let warn_until = if u.warns() {
            // Until the window resets; a day when it does not say.
            u.soonest_reset()
                .filter(|s| *s > now_s)
                .unwrap_or(now_s + 86_400)
        } else {
            0
        };
        self.warning_until_s.store(warn_until, Ordering::Relaxed);
        d.unified = Some(u);
    }

    /// Back to healthy with a clean record (an admin fixed the account).
    pub fn reset(&self) {
        let mut d = self.detail();
        self.blocked_until_ms.store(0, Ordering::Release);
        self.reason.store(0, Ordering::Release);
        self.probe.store(0, Ordering::Release);
        self.warning_until_s.store(0, Ordering::Relaxed);
        self.reset_hint_s.store(0, Ordering::Relaxed);
        *d = Detail::default();
    }

    pub fn snapshot(&self, now_ms: u64) -> HealthSnapshot {
        let d = self.detail();
        let state = self.state(now_ms);
        let (cooling_until_ms, reason) = match state {
            HealthState::Cooling { until_ms, reason } => (Some(until_ms), Some(reason)),
            HealthState::NeedsAttention => (None, Some(CoolReason::CredentialsRejected)),
            _ => (None, None),
        };
        let len = d.recent_len.min(64);
        let mask = if len == 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        HealthSnapshot {
            state,
            cooling_until_ms,
            reason,
            last_error: d.last_error.clone(),
            recent_success_rate: (len > 0)
                .then(|| f64::from((d.recent & mask).count_ones()) / f64::from(len)),
            recent_outcomes: len,
            consecutive_cooldowns: d.streak,
            sticky_sessions: self.sticky_sessions(),
            unified: d.unified,
        }
    }
}

fn error(at_ms: u64, status: Option<u16>, message: String) -> LastError {
    LastError {
        at_ms,
        status,
        message,
    }
}

fn push_recent(d: &mut Detail, ok: bool) {
    d.recent = (d.recent << 1) | u64::from(ok);
    d.recent_len = (d.recent_len + 1).min(64);
}

#[cfg(test)]
mod tests;

//! The counters of one scope and the checks made against them.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::calendar::{Bounds, Window};
use super::remaining::{Headroom, Remaining};
use super::{LimitKind, Refusal, Scope, ScopeUsage, Spend};
use crate::limits::KeyLimits;

/// Seconds in the rolling window of `requestsPerMinute` and `tokensPerMinute`.
const MINUTE_SECS: i64 = 60;

/// How long a client waits when in-flight requests, not settled use, hold
/// the room: they finish in seconds, not at the window's end.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(2);

/// One calendar window's settled spend.
#[derive(Debug, Clone, Copy)]
struct WindowCount {
    start: DateTime<Utc>,
    spent: Spend,
}

/// Settled tokens per second over the last minute, in a ring with a
/// running total, so the hot path never scans it.
#[derive(Debug, Clone)]
struct TokenRing {
    /// Tokens settled in each second, indexed by unix second % 60.
    buckets: [u64; MINUTE_SECS as usize],
    /// The latest second the ring has been advanced to.
    head: i64,
    /// Sum of the buckets.
    total: u64,
}

impl TokenRing {
    fn new() -> Self {
        Self {
            buckets: [0; MINUTE_SECS as usize],
            head: i64::MIN,
            total: 0,
        }
    }

    fn slot(second: i64) -> usize {
        second.rem_euclid(MINUTE_SECS) as usize
    }

    /// Empties the buckets of the seconds that left the minute. A clock
    /// that steps back keeps the ring where it is.
    fn advance(&mut self, now: DateTime<Utc>) {
        let s = now.timestamp();
        if s <= self.head {
            return;
        }
        if self.head == i64::MIN || s - self.head >= MINUTE_SECS {
            self.buckets = [0; MINUTE_SECS as usize];
            self.total = 0;
        } else {
            for sec in self.head + 1..=s {
                let b = &mut self.buckets[Self::slot(sec)];
                self.total = self.total.saturating_sub(*b);
                *b = 0;
            }
        }
        self.head = s;
    }

    fn add(&mut self, now: DateTime<Utc>, tokens: u64) {
        self.advance(now);
        let b = &mut self.buckets[Self::slot(self.head)];
        *b = b.saturating_add(tokens);
        self.total = self.total.saturating_add(tokens);
    }

    fn sum(&mut self, now: DateTime<Utc>) -> u64 {
        self.advance(now);
        self.total
    }

    /// (second, tokens) of the non-empty buckets, oldest first.
    fn live(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        let head = self.head;
        (head.saturating_sub(MINUTE_SECS - 1)..=head)
            .map(|sec| (sec, self.buckets[Self::slot(sec)]))
            .filter(|(_, n)| *n > 0)
    }

    /// How long until the settled tokens fall below `room`, if they will.
    fn wait_until_below(&mut self, room: u64, now: DateTime<Utc>) -> Option<Duration> {
        self.advance(now);
        let mut left = self.total;
        for (sec, n) in self.live() {
            left -= n;
            if left < room {
                let expires = DateTime::<Utc>::from_timestamp(sec + MINUTE_SECS, 0)?;
                return (expires - now).to_std().ok();
            }
        }
        None
    }

    fn oldest(&self) -> Option<i64> {
        self.live().next().map(|(sec, _)| sec)
    }
}

/// Counters of one scope.
#[derive(Debug, Clone)]
pub(super) struct ScopeState {
    windows: [WindowCount; 4],
    /// Reserved by requests in flight (not yet settled).
    reserved: Spend,
    in_flight: u32,
    /// Admission times within the last minute; at most as many as the
    /// `requestsPerMinute` limit needs.
    requests: VecDeque<DateTime<Utc>>,
    tokens: TokenRing,
}

fn cost_limit(usd: f64) -> u64 {
    u64::try_from(KeyLimits::micro_usd(usd)).unwrap_or(0)
}

/// The token and cost (micro-USD) limits of window `w`; zero is none.
/// Public so that limiters outside this crate read limits alike.
pub fn window_limits(limits: &KeyLimits, w: Window) -> (u64, u64) {
    let (t, c) = (&limits.tokens, &limits.cost_usd);
    match w {
        Window::Daily => (t.daily, cost_limit(c.daily)),
        Window::Weekly => (t.weekly, cost_limit(c.weekly)),
        Window::Monthly => (t.monthly, cost_limit(c.monthly)),
        Window::Total => (t.total, cost_limit(c.total)),
    }
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn wait(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Duration> {
    until.map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
}

impl ScopeState {
    pub(super) fn new(bounds: &Bounds) -> Self {
        let windows = Window::ALL.map(|w| WindowCount {
            start: bounds.start(w),
            spent: Spend::default(),
        });
        Self {
            windows,
            reserved: Spend::default(),
            in_flight: 0,
            requests: VecDeque::new(),
            tokens: TokenRing::new(),
        }
    }

    /// Adds what the usage store holds (per window) to the counters.
    pub(super) fn load(&mut self, bounds: &Bounds, baseline: &[Spend]) {
        self.roll(bounds);
        for (w, spent) in self.windows.iter_mut().zip(baseline) {
            w.spent.add(*spent);
        }
    }

    /// Starts windows afresh whose calendar period changed.
    pub(super) fn roll(&mut self, bounds: &Bounds) {
        for (w, count) in Window::ALL.iter().zip(self.windows.iter_mut()) {
            let start = bounds.start(*w);
            if count.start != start {
                *count = WindowCount {
                    start,
                    spent: Spend::default(),
                };
            }
        }
    }

    /// Forgets admissions older than a minute.
    fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - chrono::Duration::seconds(MINUTE_SECS);
        while self.requests.front().is_some_and(|t| *t <= horizon) {
            self.requests.pop_front();
        }
    }

    /// Whether one more request fits every limit of this scope. A scope
    /// with room left admits; the request may then use more than the room.
    pub(super) fn check(
        &mut self,
        scope: &Scope,
        limits: &KeyLimits,
        now: DateTime<Utc>,
        bounds: &Bounds,
    ) -> Result<(), Refusal> {
        self.roll(bounds);
        self.prune(now);
        let refuse = |kind, limit: u64, used: u64, retry_after| Refusal {
            scope: scope.clone(),
            kind,
            limit,
            used,
            retry_after,
        };
        if limits.concurrency > 0 && self.in_flight >= limits.concurrency {
            return Err(refuse(
                LimitKind::Concurrency,
                limits.concurrency.into(),
                self.in_flight.into(),
                Some(Duration::from_secs(1)),
            ));
        }
        let rpm = limits.requests_per_minute as usize;
        if rpm > 0 && self.requests.len() >= rpm {
            // The slot frees when the rpm-th most recent admission ages out.
            let freeing = self.requests[self.requests.len() - rpm];
            let at = freeing + chrono::Duration::seconds(MINUTE_SECS);
            return Err(refuse(
                LimitKind::RequestsPerMinute,
                rpm as u64,
                self.requests.len() as u64,
                wait(Some(at), now),
            ));
        }
        let tpm = limits.tokens_per_minute;
        if tpm > 0 {
            let used = self.tokens.sum(now).saturating_add(self.reserved.tokens);
            if used >= tpm {
                let room = tpm.saturating_sub(self.reserved.tokens);
                let retry = self
                    .tokens
                    .wait_until_below(room, now)
                    .unwrap_or(IN_FLIGHT_RETRY);
                return Err(refuse(LimitKind::TokensPerMinute, tpm, used, Some(retry)));
            }
        }
        for w in Window::ALL {
            let (tokens, cost) = window_limits(limits, w);
            let spent = self.windows[w.index()].spent;
            let retry = |settled_alone_full: bool| {
                if settled_alone_full {
                    wait(bounds.end(w), now)
                } else {
                    Some(IN_FLIGHT_RETRY)
                }
            };
            let used = spent.tokens.saturating_add(self.reserved.tokens);
            if tokens > 0 && used >= tokens {
                let full = spent.tokens >= tokens;
                return Err(refuse(LimitKind::Tokens(w), tokens, used, retry(full)));
            }
            let settled_cost = nonneg(spent.cost_micro_usd);
            let used = settled_cost.saturating_add(nonneg(self.reserved.cost_micro_usd));
            if cost > 0 && used >= cost {
                let full = settled_cost >= cost;
                return Err(refuse(LimitKind::Cost(w), cost, used, retry(full)));
            }
        }
        Ok(())
    }

    /// Takes the request's slots and reservation (after [`Self::check`]).
    pub(super) fn take(&mut self, limits: &KeyLimits, reserve: Spend, now: DateTime<Utc>) {
        self.reserved.add(reserve);
        self.in_flight += 1;
        let rpm = limits.requests_per_minute as usize;
        if rpm == 0 {
            self.requests.clear();
        } else {
            self.requests.push_back(now);
            while self.requests.len() > rpm {
                self.requests.pop_front();
            }
        }
    }

    /// Adds this scope's headroom to `out` (the tightest scope wins).
    pub(super) fn headroom(
        &mut self,
        scope: &Scope,
        limits: &KeyLimits,
        now: DateTime<Utc>,
        bounds: &Bounds,
        out: &mut Remaining,
    ) {
        let kind = scope.kind();
        let minute = chrono::Duration::seconds(MINUTE_SECS);
        if limits.requests_per_minute > 0 {
            let limit = u64::from(limits.requests_per_minute);
            let reset = self.requests.front().map_or(now, |t| *t) + minute;
            out.offer_requests(Headroom::new(
                kind,
                None,
                limit,
                self.requests.len() as u64,
                Some(reset),
            ));
        }
        if limits.tokens_per_minute > 0 {
            let used = self.tokens.sum(now).saturating_add(self.reserved.tokens);
            let reset = self
                .tokens
                .oldest()
                .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
                .unwrap_or(now)
                + minute;
            out.offer_tokens(Headroom::new(
                kind,
                None,
                limits.tokens_per_minute,
                used,
                Some(reset),
            ));
        }
        if limits.concurrency > 0 {
            out.offer_concurrency(Headroom::new(
                kind,
                None,
                limits.concurrency.into(),
                self.in_flight.into(),
                None,
            ));
        }
        for w in Window::ALL {
            let (tokens, cost) = window_limits(limits, w);
            let spent = self.windows[w.index()].spent;
            if tokens > 0 {
                let used = spent.tokens.saturating_add(self.reserved.tokens);
                out.offer_quota_tokens(Headroom::new(kind, Some(w), tokens, used, bounds.end(w)));
            }
            if cost > 0 {
                let used = nonneg(spent.cost_micro_usd)
                    .saturating_add(nonneg(self.reserved.cost_micro_usd));
                out.offer_quota_cost(Headroom::new(kind, Some(w), cost, used, bounds.end(w)));
            }
        }
    }

    /// Replaces a reservation with the real spend.
    pub(super) fn settle(
        &mut self,
        reserve: Spend,
        actual: Spend,
        lease: bool,
        now: DateTime<Utc>,
        bounds: &Bounds,
    ) {
        self.release(reserve, lease);
        self.count(actual, now, bounds);
    }

    /// Counts spend that held no reservation here.
    pub(super) fn count(&mut self, actual: Spend, now: DateTime<Utc>, bounds: &Bounds) {
        self.roll(bounds);
        for w in &mut self.windows {
            w.spent.add(actual);
        }
        if actual.tokens > 0 {
            self.tokens.add(now, actual.tokens);
        }
    }

    /// Gives a reservation (and the concurrency slot) back.
    pub(super) fn release(&mut self, reserve: Spend, lease: bool) {
        self.reserved.sub(reserve);
        if lease {
            self.end_lease();
        }
    }

    pub(super) fn end_lease(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub(super) fn usage(&mut self, now: DateTime<Utc>, bounds: &Bounds) -> ScopeUsage {
        self.roll(bounds);
        self.prune(now);
        ScopeUsage {
            settled: self.windows.map(|w| w.spent),
            reserved: self.reserved,
            in_flight: self.in_flight,
            requests_last_minute: u32::try_from(self.requests.len()).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::limit::Calendar;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn token_ring_slides() {
        let mut r = TokenRing::new();
        r.add(t("2026-01-01T00:00:00Z"), 100);
        r.add(t("2026-01-01T00:00:30Z"), 50);
        let wait = r.wait_until_below(60, t("2026-01-01T00:00:40Z"));
        assert_eq!(wait, Some(Duration::from_secs(20)));
        let wait = r.wait_until_below(10, t("2026-01-01T00:00:40Z"));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(r.oldest(), Some(t("2026-01-01T00:00:00Z").timestamp()));
        assert_eq!(r.sum(t("2026-01-01T00:00:59Z")), 150);
        assert_eq!(r.sum(t("2026-01-01T00:01:00Z")), 50);
        assert_eq!(r.sum(t("2026-01-01T00:01:30Z")), 0);
        r.add(t("2026-01-01T00:05:00Z"), 7);
        assert_eq!(r.sum(t("2026-01-01T00:05:00Z")), 7);
    }

    #[test]
    fn windows_reset_on_their_own_calendar() {
        let cal = Calendar::new(chrono_tz::Tz::UTC);
        let now = t("2026-01-31T23:00:00Z");
        let mut s = ScopeState::new(&cal.bounds(now));
        s.count(
            Spend {
                tokens: 10,
                cost_micro_usd: 7,
            },
            now,
            &cal.bounds(now),
        );
        // Saturday 31 January → Sunday 1 February: day and month reset,
        // the week (Monday to Sunday) goes on.
        let later = t("2026-02-01T00:00:00Z");
        let u = s.usage(later, &cal.bounds(later));
        assert_eq!(u.settled(Window::Daily), Spend::default());
        assert_eq!(u.settled(Window::Monthly), Spend::default());
        assert_eq!(u.settled(Window::Weekly).tokens, 10);
        assert_eq!(u.settled(Window::Total).tokens, 10);
        // Monday: the week resets too; the total never does.
        let monday = t("2026-02-02T00:00:00Z");
        let u = s.usage(monday, &cal.bounds(monday));
        assert_eq!(u.settled(Window::Weekly), Spend::default());
        assert_eq!(u.settled(Window::Total).tokens, 10);
    }
}

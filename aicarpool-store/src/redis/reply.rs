//! Script replies read back into the core's types.
//!
//! The admission script answers with a flat list of integers (see the top
//! of `admit.lua`); headroom is computed here from the counters it reports,
//! the way the in-memory limiter computes it.

use std::time::Duration;

use aicarpool_core::limit::{
    keep_longest, window_limits, AdmitError, Bounds, Headroom, LimitKind, Refusal, Remaining,
    ScopeUsage, ScopedLimits, Spend, Window,
};
use chrono::{DateTime, Utc};

pub(super) const ADMITTED: i64 = 0;
pub(super) const REFUSED: i64 = 1;
pub(super) const NEEDS_BASELINE: i64 = 2;

/// Integers per scope in an admission reply.
const PER_SCOPE: usize = 16;

pub(super) fn malformed() -> AdmitError {
    AdmitError::Unavailable("limit counters in Redis: unexpected script reply".into())
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// What an admission took.
#[derive(Debug)]
pub(super) struct Admitted {
    /// Indexes of the scopes that counted the request.
    pub(super) tracked: Vec<usize>,
    pub(super) remaining: Remaining,
}

/// An admission reply: the tracked scopes and headroom, or the refusal.
pub(super) fn admission(
    reply: &[i64],
    scopes: &[ScopedLimits<'_>],
    now: DateTime<Utc>,
    bounds: &Bounds,
) -> Result<Admitted, AdmitError> {
    match reply.first() {
        Some(&ADMITTED) => {
            let body = &reply[1..];
            if body.len() != scopes.len() * PER_SCOPE {
                return Err(malformed());
            }
            let mut admitted = Admitted {
                tracked: Vec::new(),
                remaining: Remaining::default(),
            };
            for (i, (s, counters)) in scopes.iter().zip(body.chunks_exact(PER_SCOPE)).enumerate() {
                if counters[0] == 1 {
                    admitted.tracked.push(i);
                    headroom(s, counters, now, bounds, &mut admitted.remaining);
                }
            }
            Ok(admitted)
        }
        Some(&REFUSED) => {
            let mut refusal = None;
            for r in reply[1..].chunks_exact(4) {
                let s = usize::try_from(r[0])
                    .ok()
                    .and_then(|i| scopes.get(i))
                    .ok_or_else(malformed)?;
                let (kind, limit) = kind(r[1], s).ok_or_else(malformed)?;
                let next = Refusal {
                    scope: s.scope.clone(),
                    kind,
                    limit,
                    used: nonneg(r[2]),
                    retry_after: u64::try_from(r[3]).ok().map(Duration::from_millis),
                };
                refusal = Some(keep_longest(refusal, next));
            }
            Err(AdmitError::Refused(refusal.ok_or_else(malformed)?))
        }
        _ => Err(malformed()),
    }
}

/// The limit a refusal code stands for, with its configured value.
fn kind(code: i64, s: &ScopedLimits<'_>) -> Option<(LimitKind, u64)> {
    let l = s.limits;
    let window = |i: i64| Window::ALL.get(usize::try_from(i).ok()?).copied();
    Some(match code {
        0 => (LimitKind::Concurrency, l.concurrency.into()),
        1 => (LimitKind::RequestsPerMinute, l.requests_per_minute.into()),
        2 => (LimitKind::TokensPerMinute, l.tokens_per_minute),
        10..=13 => {
            let w = window(code - 10)?;
            (LimitKind::Tokens(w), window_limits(l, w).0)
        }
        20..=23 => {
            let w = window(code - 20)?;
            (LimitKind::Cost(w), window_limits(l, w).1)
        }
        _ => return None,
    })
}

/// Offers one admitted scope's headroom, as `ScopeState::headroom` does
/// in memory.
fn headroom(
    s: &ScopedLimits<'_>,
    c: &[i64],
    now: DateTime<Utc>,
    bounds: &Bounds,
    out: &mut Remaining,
) {
    let kind = s.scope.kind();
    let limits = s.limits;
    let minute = chrono::Duration::seconds(60);
    let (in_flight, requests, oldest_request) = (c[1], c[2], c[3]);
    let (minute_tokens, oldest_second) = (c[4], c[5]);
    let (reserved_tokens, reserved_cost) = (nonneg(c[6]), nonneg(c[7]));
    let (settled_tokens, settled_cost) = (&c[8..12], &c[12..16]);
    if limits.requests_per_minute > 0 {
        let oldest = (oldest_request >= 0)
            .then(|| DateTime::<Utc>::from_timestamp_millis(oldest_request))
            .flatten();
        out.offer_requests(Headroom::new(
            kind,
            None,
            limits.requests_per_minute.into(),
            nonneg(requests),
            Some(oldest.unwrap_or(now) + minute),
        ));
    }
    if limits.tokens_per_minute > 0 {
        let oldest = (oldest_second >= 0)
            .then(|| DateTime::<Utc>::from_timestamp(oldest_second, 0))
            .flatten();
        out.offer_tokens(Headroom::new(
            kind,
            None,
            limits.tokens_per_minute,
            nonneg(minute_tokens).saturating_add(reserved_tokens),
            Some(oldest.unwrap_or(now) + minute),
        ));
    }
    if limits.concurrency > 0 {
        out.offer_concurrency(Headroom::new(
            kind,
            None,
            limits.concurrency.into(),
            nonneg(in_flight),
            None,
        ));
    }
    for (i, w) in Window::ALL.into_iter().enumerate() {
        let (tokens, cost) = window_limits(limits, w);
        if tokens > 0 {
            let used = nonneg(settled_tokens[i]).saturating_add(reserved_tokens);
            out.offer_quota_tokens(Headroom::new(kind, Some(w), tokens, used, bounds.end(w)));
        }
        if cost > 0 {
            let used = nonneg(settled_cost[i]).saturating_add(reserved_cost);
            out.offer_quota_cost(Headroom::new(kind, Some(w), cost, used, bounds.end(w)));
        }
    }
}

/// A usage reply: settled per window, reserved, in flight, requests.
pub(super) fn usage(reply: &[i64]) -> Result<ScopeUsage, AdmitError> {
    let [ADMITTED, body @ ..] = reply else {
        return Err(malformed());
    };
    let &[dt, dc, wt, wc, mt, mc, tt, tc, rt, rc, in_flight, requests] = body else {
        return Err(malformed());
    };
    let spend = |tokens: i64, cost: i64| Spend {
        tokens: nonneg(tokens),
        cost_micro_usd: cost,
    };
    Ok(ScopeUsage {
        settled: [spend(dt, dc), spend(wt, wc), spend(mt, mc), spend(tt, tc)],
        reserved: spend(rt, rc),
        in_flight: u32::try_from(in_flight).unwrap_or(0),
        requests_last_minute: u32::try_from(requests).unwrap_or(u32::MAX),
    })
}

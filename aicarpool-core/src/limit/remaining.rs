//! A member's headroom after admission, and the response headers that
//! tell them about it.
//!
//! Each header reports the tightest limit over every scope of the request
//! (key, member, group): what the member can really still do.
//!
//! | header | meaning |
//! |---|---|
//! | `x-aicarpool-ratelimit-requests-limit` / `-remaining` / `-reset` | requests per rolling minute |
//! | `x-aicarpool-ratelimit-tokens-limit` / `-remaining` / `-reset` | tokens per rolling minute |
//! | `x-aicarpool-concurrency-limit` / `-remaining` | requests at once |
//! | `x-aicarpool-quota-tokens-limit` / `-remaining` / `-reset` / `-scope` | token quota (day, week, month or total) |
//! | `x-aicarpool-quota-cost-limit-usd` / `-remaining-usd` / `-reset` / `-scope` | cost budget |
//!
//! `-reset` is RFC 3339 (absent for a total quota, which never resets);
//! `-scope` says whose limit it is and which window, e.g. `group/monthly`.
//! A header is absent when no such limit applies.

use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::calendar::Window;
use super::usd;

/// Room left under one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// `key`, `member` or `group`.
    pub scope: &'static str,
    /// The quota window; `None` for per-minute and concurrency limits.
    pub window: Option<Window>,
    pub limit: u64,
    pub remaining: u64,
    /// When the counted use starts to free up; `None`: never (total).
    pub reset: Option<DateTime<Utc>>,
}

impl Headroom {
    /// The room under `limit` once `used` is counted (never below zero).
    /// Public so that limiters outside this crate report headroom alike.
    pub fn new(
        scope: &'static str,
        window: Option<Window>,
        limit: u64,
        used: u64,
        reset: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            scope,
            window,
            limit,
            remaining: limit.saturating_sub(used),
            reset,
        }
    }
}

/// The tightest headroom of each kind over all of a request's scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remaining {
    pub requests: Option<Headroom>,
    pub tokens: Option<Headroom>,
    pub concurrency: Option<Headroom>,
    pub quota_tokens: Option<Headroom>,
    pub quota_cost: Option<Headroom>,
}

/// Keeps the headroom with less room left.
fn offer(slot: &mut Option<Headroom>, h: Headroom) {
    if slot.is_none_or(|cur| h.remaining < cur.remaining) {
        *slot = Some(h);
    }
}

/// Each `offer_*` keeps the headroom with less room left, so a limiter
/// offers every scope's headroom and the tightest one is reported.
impl Remaining {
    pub fn offer_requests(&mut self, h: Headroom) {
        offer(&mut self.requests, h);
    }
    pub fn offer_tokens(&mut self, h: Headroom) {
        offer(&mut self.tokens, h);
    }
    pub fn offer_concurrency(&mut self, h: Headroom) {
        offer(&mut self.concurrency, h);
    }
    pub fn offer_quota_tokens(&mut self, h: Headroom) {
        offer(&mut self.quota_tokens, h);
    }
    pub fn offer_quota_cost(&mut self, h: Headroom) {
        offer(&mut self.quota_cost, h);
    }

    pub fn is_empty(&self) -> bool {
        *self == Remaining::default()
    }

    /// Adds the `x-aicarpool-*` headers (see the module docs).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        let reset = |h: &Headroom| {
            h.reset
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        };
        let scope = |h: &Headroom| match h.window {
            Some(w) => format!("{}/{}", h.scope, w.as_str()),
            None => h.scope.to_owned(),
        };
        if let Some(h) = &self.requests {
            put("x-aicarpool-ratelimit-requests-limit", h.limit.to_string());
            put(
                "x-aicarpool-ratelimit-requests-remaining",
                h.remaining.to_string(),
            );
            if let Some(r) = reset(h) {
                put("x-aicarpool-ratelimit-requests-reset", r);
            }
        }
        if let Some(h) = &self.tokens {
            put("x-aicarpool-ratelimit-tokens-limit", h.limit.to_string());
            put(
                "x-aicarpool-ratelimit-tokens-remaining",
                h.remaining.to_string(),
            );
            if let Some(r) = reset(h) {
                put("x-aicarpool-ratelimit-tokens-reset", r);
            }
        }
        if let Some(h) = &self.concurrency {
            put("x-aicarpool-concurrency-limit", h.limit.to_string());
            put("x-aicarpool-concurrency-remaining", h.remaining.to_string());
        }
        if let Some(h) = &self.quota_tokens {
            put("x-aicarpool-quota-tokens-limit", h.limit.to_string());
            put(
                "x-aicarpool-quota-tokens-remaining",
                h.remaining.to_string(),
            );
            if let Some(r) = reset(h) {
                put("x-aicarpool-quota-tokens-reset", r);
            }
            put("x-aicarpool-quota-tokens-scope", scope(h));
        }
        if let Some(h) = &self.quota_cost {
            put("x-aicarpool-quota-cost-limit-usd", usd(h.limit));
            put("x-aicarpool-quota-cost-remaining-usd", usd(h.remaining));
            if let Some(r) = reset(h) {
                put("x-aicarpool-quota-cost-reset", r);
            }
            put("x-aicarpool-quota-cost-scope", scope(h));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tightest_wins_and_headers_are_written() {
        let mut r = Remaining::default();
        let reset = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        r.offer_quota_cost(Headroom::new(
            "key",
            Some(Window::Daily),
            5_000_000,
            1_000_000,
            Some(reset),
        ));
        r.offer_quota_cost(Headroom::new(
            "group",
            Some(Window::Monthly),
            50_000_000,
            48_500_000,
            Some(reset),
        ));
        r.offer_quota_tokens(Headroom::new("key", Some(Window::Total), 100, 40, None));
        let mut h = HeaderMap::new();
        r.write_headers(&mut h);
        assert_eq!(h["x-aicarpool-quota-cost-remaining-usd"], "1.50");
        assert_eq!(h["x-aicarpool-quota-cost-limit-usd"], "50.00");
        assert_eq!(h["x-aicarpool-quota-cost-scope"], "group/monthly");
        assert_eq!(h["x-aicarpool-quota-cost-reset"], "2026-02-01T00:00:00Z");
        assert_eq!(h["x-aicarpool-quota-tokens-remaining"], "60");
        assert!(h.get("x-aicarpool-quota-tokens-reset").is_none());
        assert!(h.get("x-aicarpool-ratelimit-requests-limit").is_none());
    }
}

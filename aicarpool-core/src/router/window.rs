//! What an upstream's response headers say about its limits.
//!
//! Anthropic subscription accounts answer with `anthropic-ratelimit-unified-*`
//! headers: an overall status and reset, and per-window (`5h`, `7d`) status,
//! reset (epoch seconds) and utilization. A 429 may also carry
//! `retry-after` (seconds or an HTTP date). The router reads them to cool an
//! account until the right moment, to prefer the account whose window resets
//! soonest ("use it before it resets"), and to avoid one that warns.

use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;

/// A window's status as the upstream reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    Allowed,
    AllowedWarning,
    Rejected,
    /// A value this build does not know.
    Other,
}

impl WindowStatus {
    fn parse(s: &str) -> Self {
        match s.trim() {
            "allowed" => WindowStatus::Allowed,
            "allowed_warning" => WindowStatus::AllowedWarning,
            "rejected" => WindowStatus::Rejected,
            _ => WindowStatus::Other,
        }
    }
}

/// One usage window (`5h` or `7d`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowInfo {
    pub status: Option<WindowStatus>,
    /// Epoch seconds.
    pub reset: Option<u64>,
    /// 0.0 – 1.0 when the upstream says.
    pub utilization: Option<f64>,
}

impl WindowInfo {
    fn is_empty(&self) -> bool {
        self.status.is_none() && self.reset.is_none() && self.utilization.is_none()
    }
}

/// The unified rate-limit picture of an account, as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnifiedWindow {
    pub status: Option<WindowStatus>,
    /// Epoch seconds.
    pub reset: Option<u64>,
    pub five_hour: WindowInfo,
    pub seven_day: WindowInfo,
    /// Epoch milliseconds of the answer these came from.
    pub seen_at_ms: u64,
}

impl UnifiedWindow {
    fn statuses(&self) -> impl Iterator<Item = WindowStatus> {
        [self.status, self.five_hour.status, self.seven_day.status]
            .into_iter()
            .flatten()
    }

    /// Whether any window asks the client to slow down.
    pub fn warns(&self) -> bool {
        self.statuses().any(|s| s == WindowStatus::AllowedWarning)
    }

    /// The soonest reset of the short window: the unified reset, else the
    /// 5-hour one (epoch seconds).
    pub fn soonest_reset(&self) -> Option<u64> {
        match (self.reset, self.five_hour.reset) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When a rejecting window opens again (epoch seconds): the latest
    /// reset among the windows that said `rejected`.
    pub fn rejected_until(&self) -> Option<u64> {
        let rejected = |status: Option<WindowStatus>, reset: Option<u64>| {
            (status == Some(WindowStatus::Rejected))
                .then_some(reset)
                .flatten()
        };
        [
            rejected(self.status, self.reset),
            rejected(self.five_hour.status, self.five_hour.reset),
            rejected(self.seven_day.status, self.seven_day.reset),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// The limit signals of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateSignals {
    /// `retry-after`, as an absolute epoch-millisecond deadline.
    pub retry_at_ms: Option<u64>,
    /// Present when any `anthropic-ratelimit-unified-*` header was sent.
    pub unified: Option<UnifiedWindow>,
}

impl RateSignals {
    /// Reads the headers of an answer received at `now_ms`.
    pub fn from_headers(headers: &HeaderMap, now_ms: u64) -> Self {
        Self {
            retry_at_ms: retry_at_ms(headers, now_ms),
            unified: unified(headers, now_ms),
        }
    }

    /// `wait` from `now_ms` as the retry deadline, unless `retry-after`
    /// already set one: a wait named in the body (Gemini's `RetryInfo`)
    /// only stands in for the missing header.
    pub fn or_wait(mut self, wait: Option<Duration>, now_ms: u64) -> Self {
        if self.retry_at_ms.is_none() {
            self.retry_at_ms = wait.map(|w| {
                let ms = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
                now_ms.saturating_add(ms)
            });
        }
        self
    }

    /// Until when a 429 says not to come back (epoch ms): the later of
    /// `retry-after` and the unified reset, if either was given.
    pub fn rate_limited_until_ms(&self, now_ms: u64) -> Option<u64> {
        let unified = self.unified.and_then(|u| {
            u.rejected_until()
                .or(u.reset)
                .map(|s| s.saturating_mul(1000))
                .filter(|ms| *ms > now_ms)
        });
        match (self.retry_at_ms, unified) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `retry-after` in seconds or as an HTTP date.
fn retry_at_ms(headers: &HeaderMap, now_ms: u64) -> Option<u64> {
    let v = header(headers, "retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(now_ms.saturating_add((secs * 1000.0) as u64));
        }
        return None;
    }
    let date = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = u64::try_from(date.timestamp_millis()).ok()?;
    Some(ms.max(now_ms))
}

fn unified(headers: &HeaderMap, now_ms: u64) -> Option<UnifiedWindow> {
    let get = |suffix: &str| header(headers, &format!("anthropic-ratelimit-unified-{suffix}"));
    // Cheap exit: answers without any unified header are the common case.
    if !headers
        .keys()
        .any(|k| k.as_str().starts_with("anthropic-ratelimit-unified-"))
    {
        return None;
    }
    let status = |s: &str| get(s).map(WindowStatus::parse);
    let epoch = |s: &str| get(s).and_then(|v| v.parse::<u64>().ok());
    let ratio = |s: &str| {
        get(s)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite())
    };
    let window = |w: &str| WindowInfo {
        status: status(&format!("{w}-status")),
        reset: epoch(&format!("{w}-reset")),
        utilization: ratio(&format!("{w}-utilization")),
    };
    let out = UnifiedWindow {
        status: status("status"),
        reset: epoch("reset"),
        five_hour: window("5h"),
        seven_day: window("7d"),
        seen_at_ms: now_ms,
    };
    let empty = out.status.is_none()
        && out.reset.is_none()
        && out.five_hour.is_empty()
        && out.seven_day.is_empty();
    (!empty).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const NOW: u64 = 1_767_225_600_000;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let h = headers(&[("retry-after", "30")]);
        assert_eq!(
            RateSignals::from_headers(&h, NOW).retry_at_ms,
            Some(NOW + 30_000)
        );
        let h = headers(&[("retry-after", "Thu, 01 Jan 2026 00:01:00 GMT")]);
        assert_eq!(
            RateSignals::from_headers(&h, NOW).retry_at_ms,
            Some(NOW + 60_000)
        );
        let h = headers(&[("retry-after", "soon")]);
        assert_eq!(RateSignals::from_headers(&h, NOW).retry_at_ms, None);
    }

    #[test]
    fn a_wait_from_the_body_stands_in_for_retry_after() {
        let wait = Some(Duration::from_millis(37_500));
        let none = RateSignals::default().or_wait(wait, NOW);
        assert_eq!(none.retry_at_ms, Some(NOW + 37_500));
        let h = headers(&[("retry-after", "5")]);
        let header = RateSignals::from_headers(&h, NOW).or_wait(wait, NOW);
        assert_eq!(header.retry_at_ms, Some(NOW + 5_000), "the header wins");
        let huge = RateSignals::default().or_wait(Some(Duration::MAX), NOW);
        assert_eq!(
            huge.retry_at_ms,
            Some(u64::MAX),
            "saturates; health caps it"
        );
    }

    #[test]
    fn unified_windows_and_the_latest_rejection() {
        let reset = NOW / 1000 + 3600;
        let h = headers(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", &reset.to_string()),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-reset", &reset.to_string()),
            ("anthropic-ratelimit-unified-5h-utilization", "1.02"),
            ("anthropic-ratelimit-unified-7d-status", "allowed"),
            (
                "anthropic-ratelimit-unified-7d-reset",
                &(reset + 86_400).to_string(),
            ),
        ]);
        let s = RateSignals::from_headers(&h, NOW);
        let u = s.unified.unwrap();
        assert_eq!(u.five_hour.utilization, Some(1.02));
        assert_eq!(u.rejected_until(), Some(reset));
        assert_eq!(u.soonest_reset(), Some(reset));
        assert_eq!(s.rate_limited_until_ms(NOW), Some(reset * 1000));
        let with_retry = RateSignals {
            retry_at_ms: Some(NOW + 10_000),
            ..s
        };
        assert_eq!(with_retry.rate_limited_until_ms(NOW), Some(reset * 1000));
    }

    #[test]
    fn warning_and_absent_headers() {
        let h = headers(&[("anthropic-ratelimit-unified-5h-status", "allowed_warning")]);
        assert!(RateSignals::from_headers(&h, NOW).unified.unwrap().warns());
        let h = headers(&[("content-type", "application/json")]);
        assert_eq!(RateSignals::from_headers(&h, NOW), RateSignals::default());
        // A reset in the past is no reason to wait.
        let h = headers(&[("anthropic-ratelimit-unified-reset", "100")]);
        assert_eq!(
            RateSignals::from_headers(&h, NOW).rate_limited_until_ms(NOW),
            None
        );
    }
}

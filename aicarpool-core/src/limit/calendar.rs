//! Time for the limiter: a clock that tests can drive, and calendar
//! windows (day, week, month) in a configured time zone.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Where the limiter reads the time. Tests drive [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (for exact boundary tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A quota window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// Calendar day in the configured time zone.
    Daily,
    /// Calendar week, Monday to Sunday, in the configured time zone.
    Weekly,
    /// Calendar month in the configured time zone.
    Monthly,
    /// Since the beginning; never resets.
    Total,
}

impl Window {
    pub const ALL: [Window; 4] = [
        Window::Daily,
        Window::Weekly,
        Window::Monthly,
        Window::Total,
    ];

    /// The field name in `limits` (`daily`, `weekly`, `monthly`, `total`).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
            Window::Total => "total",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Start (inclusive) and end (exclusive) of the current day, week and
/// month; `Total` starts at the epoch and never ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    starts: [DateTime<Utc>; 4],
    ends: [Option<DateTime<Utc>>; 4],
}

impl Bounds {
    pub fn start(&self, w: Window) -> DateTime<Utc> {
        self.starts[w.index()]
    }

    /// When the window resets; `None` for `Total`.
    pub fn end(&self, w: Window) -> Option<DateTime<Utc>> {
        self.ends[w.index()]
    }

    fn contains(&self, now: DateTime<Utc>) -> bool {
        let day = Window::Daily.index();
        self.starts[day] <= now && self.ends[day].is_some_and(|e| now < e)
    }
}

/// Calendar windows in one time zone. Bounds are cached until the day
/// changes, so the hot path does no time-zone arithmetic.
#[derive(Debug)]
pub struct Calendar {
    tz: Tz,
    cached: Mutex<Option<Bounds>>,
}

impl Calendar {
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            cached: Mutex::new(None),
        }
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The windows `now` falls in.
    pub fn bounds(&self, now: DateTime<Utc>) -> Bounds {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = *cached {
            if b.contains(now) {
                return b;
            }
        }
        let b = self.compute(now);
        *cached = Some(b);
        b
    }

    fn compute(&self, now: DateTime<Utc>) -> Bounds {
        let today = now.with_timezone(&self.tz).date_naive();
        let day = today;
        let next_day = day.checked_add_days(Days::new(1)).unwrap_or(day);
        let week = today
            .checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))
            .unwrap_or(today);
        let next_week = week.checked_add_days(Days::new(7)).unwrap_or(week);
        let month = today.with_day(1).unwrap_or(today);
        let next_month = month.checked_add_months(Months::new(1)).unwrap_or(month);
        let at = |d: NaiveDate| self.midnight(d);
        Bounds {
            starts: [at(day), at(week), at(month), DateTime::<Utc>::UNIX_EPOCH],
            ends: [
                Some(at(next_day)),
                Some(at(next_week)),
                Some(at(next_month)),
                None,
            ],
        }
    }

    /// The first instant of `date` in the zone. Where a zone skips
    /// midnight (a daylight-saving jump at 00:00), the day starts at the
    /// first local time that exists.
    fn midnight(&self, date: NaiveDate) -> DateTime<Utc> {
        let start = date.and_time(chrono::NaiveTime::MIN);
        for minutes in (0..=180).step_by(15) {
            let local = start + chrono::Duration::minutes(minutes);
            if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                return t.with_timezone(&Utc);
            }
        }
        // No zone skips three hours; fall back to UTC midnight.
        start.and_utc()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn utc_windows() {
        let c = Calendar::new(Tz::UTC);
        // A Wednesday.
        let b = c.bounds(utc("2026-01-14T10:00:00Z"));
        assert_eq!(b.start(Window::Daily), utc("2026-01-14T00:00:00Z"));
        assert_eq!(b.end(Window::Daily), Some(utc("2026-01-15T00:00:00Z")));
        assert_eq!(b.start(Window::Weekly), utc("2026-01-12T00:00:00Z"));
        assert_eq!(b.end(Window::Weekly), Some(utc("2026-01-19T00:00:00Z")));
        assert_eq!(b.start(Window::Monthly), utc("2026-01-01T00:00:00Z"));
        assert_eq!(b.end(Window::Monthly), Some(utc("2026-02-01T00:00:00Z")));
        assert_eq!(b.end(Window::Total), None);
    }

    #[test]
    fn local_day_in_shanghai() {
        let c = Calendar::new("Asia/Shanghai".parse().unwrap());
        // 16:30 UTC is 00:30 the next day in Shanghai (UTC+8).
        let b = c.bounds(utc("2026-03-31T16:30:00Z"));
        assert_eq!(b.start(Window::Daily), utc("2026-03-31T16:00:00Z"));
        assert_eq!(b.start(Window::Monthly), utc("2026-03-31T16:00:00Z"));
        assert_eq!(b.end(Window::Monthly), Some(utc("2026-04-30T16:00:00Z")));
        // 15:59 UTC is still March 31st there.
        let b = c.bounds(utc("2026-03-31T15:59:59Z"));
        assert_eq!(b.start(Window::Monthly), utc("2026-02-28T16:00:00Z"));
    }

    #[test]
    fn daylight_saving_days_are_23_and_25_hours() {
        let c = Calendar::new("America/New_York".parse().unwrap());
        let b = c.bounds(utc("2026-03-08T12:00:00Z"));
        let len = b.end(Window::Daily).unwrap() - b.start(Window::Daily);
        assert_eq!(len, chrono::Duration::hours(23));
        let b = c.bounds(utc("2026-11-01T12:00:00Z"));
        let len = b.end(Window::Daily).unwrap() - b.start(Window::Daily);
        assert_eq!(len, chrono::Duration::hours(25));
    }

    #[test]
    fn midnight_skipped_by_daylight_saving() {
        // Santiago springs forward at 00:00 → 01:00 (2026-09-06).
        let c = Calendar::new("America/Santiago".parse().unwrap());
        let b = c.bounds(utc("2026-09-06T12:00:00Z"));
        let local = b.start(Window::Daily).with_timezone(&c.time_zone());
        assert_eq!(local.date_naive().to_string(), "2026-09-06");
        assert_eq!(local.format("%H:%M").to_string(), "01:00");
    }

    #[test]
    fn cache_follows_the_clock_both_ways() {
        let c = Calendar::new(Tz::UTC);
        let a = c.bounds(utc("2026-01-14T23:59:59Z"));
        let b = c.bounds(utc("2026-01-15T00:00:00Z"));
        assert_ne!(a, b);
        let back = c.bounds(utc("2026-01-14T00:00:00Z"));
        assert_eq!(a, back);
    }
}

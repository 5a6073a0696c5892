//! A calendar month, and where it starts and ends in a time zone.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A calendar month, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    year: i32,
    month: u32,
}

/// Why a month was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    #[error("a month is written YYYY-MM")]
    Malformed,
}

impl Month {
    /// Parses `YYYY-MM` (four-digit year, two-digit month).
    pub fn parse(s: &str) -> Result<Self, MonthError> {
        let (y, m) = s.split_once('-').ok_or(MonthError::Malformed)?;
        let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(y, 4) || !digits(m, 2) {
            return Err(MonthError::Malformed);
        }
        let year = y.parse().map_err(|_| MonthError::Malformed)?;
        let month = m.parse().map_err(|_| MonthError::Malformed)?;
        NaiveDate::from_ymd_opt(year, month, 1).ok_or(MonthError::Malformed)?;
        Ok(Self { year, month })
    }

    /// The month `day` falls in.
    pub fn of(day: NaiveDate) -> Self {
        Self {
            year: day.year(),
            month: day.month(),
        }
    }

    /// The month an instant falls in, in `tz`.
    pub fn at<Tz: TimeZone>(instant: DateTime<Utc>, tz: &Tz) -> Self {
        Self::of(instant.with_timezone(tz).date_naive())
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    pub fn first_day(self) -> NaiveDate {
        // Checked when the month was made.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn next(self) -> Self {
        match self.month {
            12 => Self {
                year: self.year + 1,
                month: 1,
            },
            m => Self {
                year: self.year,
                month: m + 1,
            },
        }
    }

    /// 28 to 31.
    pub fn days(self) -> u32 {
        let next = self.next().first_day();
        (next - self.first_day()).num_days() as u32
    }

    /// The first instant of the month in `tz` (its first midnight, or the
    /// hour after when the zone skips that midnight).
    pub fn start_in<Tz: TimeZone>(self, tz: &Tz) -> DateTime<Utc> {
        let midnight = self.first_day().and_time(chrono::NaiveTime::MIN);
        [midnight, midnight + chrono::Duration::hours(1)]
            .iter()
            .find_map(|local| tz.from_local_datetime(local).earliest())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc())
    }

    /// `[start, end)` of the month in `tz`.
    pub fn bounds_in<Tz: TimeZone>(self, tz: &Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.start_in(tz), self.next().start_in(tz))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = MonthError;
    fn from_str(s: &str) -> Result<Self, MonthError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Month {
    type Error = MonthError;
    fn try_from(s: String) -> Result<Self, MonthError> {
        Self::parse(&s)
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly_and_know_their_days() {
        let feb = Month::parse("2028-02").unwrap();
        assert_eq!(feb.days(), 29);
        assert_eq!(Month::parse("2027-02").unwrap().days(), 28);
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-01",
            "2026/01",
            "2026-01-01",
            "",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_follow_the_time_zone() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let (from, to) = Month::parse("2026-07").unwrap().bounds_in(&berlin);
        assert_eq!(from.to_rfc3339(), "2026-06-30T22:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-07-31T22:00:00+00:00");
        assert_eq!(Month::at(from, &berlin).to_string(), "2026-07");
        assert_eq!(Month::at(from, &Utc).to_string(), "2026-06");
    }
}

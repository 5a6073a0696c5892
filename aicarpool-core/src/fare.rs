//! The fare of a carpool: what each member owes for a month.
//!
//! An account can carry a monthly [`Fee`] (a subscription's price). Each
//! month's [`Statement`] of a group splits that fee, and passes the
//! list-price cost of accounts without a fee (API keys) through to the
//! members who used them:
//!
//! 1. A fee is prorated by day: each day of the month costs the fee in
//!    effect that day (see [`FeeChange`]) divided by the days in the month.
//! 2. The account's fee is split over the groups it served by their use of
//!    it; an account dedicated to one group belongs wholly to that group.
//! 3. Within a group, the fraction [`FareSplit::equal_part`] of the group's
//!    part is split equally among the month's active members, the rest by
//!    each member's use of the account.
//!
//! Use is the list-price cost of the requests (micro-USD), so an Opus
//! token weighs more than a Haiku token, as it does against a
//! subscription's window. Everything is integer micro-USD until the
//! statement, which speaks cents; [`split::largest_remainder`] hands out
//! the cents so the lines add up exactly.
//!
//! [`FareSplit::equal_part`]: crate::carpool::FareSplit::equal_part

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

mod month;
pub mod split;
mod statement;

pub use month::{Month, MonthError};
pub use statement::{
    statement, AccountLine, FeeAccount, MemberLine, Statement, StatementInput, Totals,
};

/// The largest fee an account can carry, in USD.
pub const MAX_FEE_USD: f64 = 1_000_000.0;

/// Micro-USD in one cent.
const MICROS_PER_CENT: i64 = 10_000;

/// How often a fee is due. Only monthly fees exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeePeriod {
    Month,
}

/// What an account costs its carpool per period, whatever it is used for.
///
/// Written `{"amountUsd": 200, "period": "month"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FeeJson", into = "FeeJson")]
pub struct Fee {
    pub amount_micro_usd: i64,
    pub period: FeePeriod,
}

impl Fee {
    /// A monthly fee of `micro_usd`.
    pub fn monthly(micro_usd: i64) -> Self {
        Self {
            amount_micro_usd: micro_usd,
            period: FeePeriod::Month,
        }
    }
}

/// Why a fee was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeeError {
    #[error("fee.amountUsd must be a number between 0 and {MAX_FEE_USD}")]
    Amount,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FeeJson {
    amount_usd: f64,
    period: FeePeriod,
}

impl TryFrom<FeeJson> for Fee {
    type Error = FeeError;

    fn try_from(j: FeeJson) -> Result<Self, FeeError> {
        if !(0.0..=MAX_FEE_USD).contains(&j.amount_usd) {
            return Err(FeeError::Amount);
        }
        // In range, so the product fits an i64 exactly enough.
        let micro = (j.amount_usd * 1e6).round() as i64;
        Ok(Self {
            amount_micro_usd: micro,
            period: j.period,
        })
    }
}

impl From<Fee> for FeeJson {
    fn from(f: Fee) -> Self {
        Self {
            amount_usd: f.amount_micro_usd as f64 / 1e6,
            period: f.period,
        }
    }
}

/// A fee set (or, with `fee: None`, ended) on a day: it applies from that
/// day, in the server's time zone, until the next change. An account's
/// history is its changes, oldest first; setting a fee twice on one day
/// keeps the later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeChange {
    pub from: NaiveDate,
    pub fee: Option<Fee>,
}

/// The fee in effect on `day` under `history` (oldest first).
pub fn fee_on(history: &[FeeChange], day: NaiveDate) -> Option<Fee> {
    history
        .iter()
        .take_while(|c| c.from <= day)
        .last()
        .and_then(|c| c.fee)
}

/// The fee in effect now: the latest change's.
pub fn current_fee(history: &[FeeChange]) -> Option<Fee> {
    history.last().and_then(|c| c.fee)
}

/// The month's share of the fees in effect on its days, in micro-USD:
/// each day costs its fee divided by the days in the month, rounded once
/// at the end. `None` when no day of the month had a fee, so the account
/// passes its cost through that month.
pub fn prorated_fee(history: &[FeeChange], month: Month) -> Option<i64> {
    let days = month.days();
    let mut sum: i128 = 0;
    let mut any = false;
    for day in month.first_day().iter_days().take(days as usize) {
        debug_assert_eq!(day.month(), month.month());
        if let Some(fee) = fee_on(history, day) {
            any = true;
            sum += i128::from(fee.amount_micro_usd);
        }
    }
    let days = i128::from(days);
    // Half up: fees are never negative.
    any.then(|| ((sum + days / 2) / days) as i64)
}

/// Whole cents, shown as dollars with two places (`12.34`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(pub i64);

impl Cents {
    /// `micro` rounded to the nearest cent, halves up.
    pub fn from_micro_usd(micro: i64) -> Self {
        Self((micro + MICROS_PER_CENT / 2).div_euclid(MICROS_PER_CENT))
    }

    /// `12.34` for 1234 cents, `-0.05` for -5: what a CSV cell holds.
    pub fn to_decimal(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, o: Cents) -> Cents {
        Cents(self.0 + o.0)
    }
}

impl std::ops::AddAssign for Cents {
    fn add_assign(&mut self, o: Cents) {
        self.0 += o.0;
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        Cents(iter.map(|c| c.0).sum())
    }
}

impl Serialize for Cents {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // cents / 100 prints back as its two places (shortest round trip).
        s.serialize_f64(self.0 as f64 / 100.0)
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dollars = f64::deserialize(d)?;
        Ok(Cents((dollars * 100.0).round() as i64))
    }
}

/// One (group, account, member) sum of a month's usage facts: what a
/// statement is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FareUse {
    pub group_id: String,
    /// `None` for requests no account was tried for.
    pub account_id: Option<String>,
    pub user_id: String,
    /// List-price cost.
    pub cost_micro_usd: i64,
    pub requests: u64,
    /// Requests answered with an error; the rest count as successful.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn fees_read_and_write_as_dollars() {
        let fee: Fee = serde_json::from_str(r#"{"amountUsd": 200, "period": "month"}"#).unwrap();
        assert_eq!(fee, Fee::monthly(200_000_000));
        assert_eq!(
            serde_json::to_value(Fee::monthly(19_990_000)).unwrap(),
            serde_json::json!({"amountUsd": 19.99, "period": "month"})
        );
        for bad in [
            r#"{"amountUsd": -1, "period": "month"}"#,
            r#"{"amountUsd": 2e6, "period": "month"}"#,
            r#"{"amountUsd": 5, "period": "year"}"#,
            r#"{"amountUsd": 5}"#,
            r#"{"amountUsd": 5, "period": "month", "x": 1}"#,
        ] {
            assert!(serde_json::from_str::<Fee>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fee_is_prorated_by_the_days_it_was_in_effect() {
        let june = Month::parse("2026-06").unwrap();
        let whole = [FeeChange {
            from: day("2026-01-01"),
            fee: Some(Fee::monthly(300_000_000)),
        }];
        assert_eq!(prorated_fee(&whole, june), Some(300_000_000));
        // 200 from the 1st, 300 from the 16th: 15 days each of 30.
        let changed = [
            FeeChange {
                from: day("2026-05-20"),
                fee: Some(Fee::monthly(200_000_000)),
            },
            FeeChange {
                from: day("2026-06-16"),
                fee: Some(Fee::monthly(300_000_000)),
            },
        ];
        assert_eq!(prorated_fee(&changed, june), Some(250_000_000));
        // Ended on the 11th: ten days of 30.
        let ended = [
            whole[0].clone(),
            FeeChange {
                from: day("2026-06-11"),
                fee: None,
            },
        ];
        assert_eq!(prorated_fee(&ended, june), Some(100_000_000));
        assert_eq!(prorated_fee(&ended, Month::parse("2026-07").unwrap()), None);
        assert_eq!(prorated_fee(&[], june), None);
        assert_eq!(current_fee(&ended), None);
        assert_eq!(current_fee(&changed), Some(Fee::monthly(300_000_000)));
    }

    #[test]
    fn cents_round_half_up_and_print_two_places() {
        assert_eq!(Cents::from_micro_usd(4_999), Cents(0));
        assert_eq!(Cents::from_micro_usd(5_000), Cents(1));
        assert_eq!(Cents::from_micro_usd(123_456_789), Cents(12_346));
        assert_eq!(Cents(12_346).to_decimal(), "123.46");
        assert_eq!(Cents(5).to_decimal(), "0.05");
        assert_eq!(Cents(-5).to_decimal(), "-0.05");
        assert_eq!(serde_json::to_string(&Cents(1234)).unwrap(), "12.34");
        assert_eq!(serde_json::from_str::<Cents>("12.34").unwrap(), Cents(1234));
    }
}

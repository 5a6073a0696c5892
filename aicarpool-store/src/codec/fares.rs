//! Fee changes, the month's use and closed statements as both SQL
//! backends store and read them.
//!
//! A fee change is a row `(account_id, from_day, amount_micro_usd,
//! period)`: the day as `YYYY-MM-DD` text (a local date, no instant), the
//! amount and period `NULL` for a change that ends the fee. A closed
//! statement is kept whole as JSON, so no later change of prices, fees or
//! members can reach it.

use aicarpool_core::fare::{FareUse, Fee, FeeChange, FeePeriod, Statement};
use aicarpool_core::store::StoreResult;
use chrono::NaiveDate;

use super::{corrupt, ReadRow};

/// The sums one use row holds, over `usage_facts` (records and rollups);
/// both backends group by `group_id, account_id, user_id`.
pub(crate) const FARE_USE_SUMS: &str = "group_id, account_id, user_id,
    COALESCE(SUM(cost_micro_usd), 0) AS cost_micro_usd,
    COALESCE(SUM(requests), 0) AS requests,
    COALESCE(SUM(errors), 0) AS errors,
    COALESCE(SUM(input_tokens), 0) AS input_tokens,
    COALESCE(SUM(output_tokens), 0) AS output_tokens";

/// PostgreSQL's `SUM(BIGINT)` is `NUMERIC`; this reads back as `BIGINT`.
pub(crate) const FARE_USE_SUMS_BIGINT: &str = "group_id, account_id, user_id,
    COALESCE(SUM(cost_micro_usd), 0)::BIGINT AS cost_micro_usd,
    COALESCE(SUM(requests), 0)::BIGINT AS requests,
    COALESCE(SUM(errors), 0)::BIGINT AS errors,
    COALESCE(SUM(input_tokens), 0)::BIGINT AS input_tokens,
    COALESCE(SUM(output_tokens), 0)::BIGINT AS output_tokens";

pub(crate) fn fare_use_row<R: ReadRow>(row: &R) -> StoreResult<FareUse> {
    Ok(FareUse {
        group_id: row.text("group_id")?,
        account_id: row.opt_text("account_id")?,
        user_id: row.text("user_id")?,
        cost_micro_usd: row.i64("cost_micro_usd")?,
        requests: row.int("requests")?,
        errors: row.int("errors")?,
        input_tokens: row.int("input_tokens")?,
        output_tokens: row.int("output_tokens")?,
    })
}

/// The columns a fee change is written as: day, amount, period.
pub(crate) fn fee_change_cols(c: &FeeChange) -> (String, Option<i64>, Option<&'static str>) {
    let day = c.from.format("%Y-%m-%d").to_string();
    match c.fee {
        Some(f) => (day, Some(f.amount_micro_usd), Some(period_str(f.period))),
        None => (day, None, None),
    }
}

fn period_str(p: FeePeriod) -> &'static str {
    match p {
        FeePeriod::Month => "month",
    }
}

pub(crate) fn fee_change_row<R: ReadRow>(row: &R) -> StoreResult<FeeChange> {
    let from = NaiveDate::parse_from_str(&row.text("from_day")?, "%Y-%m-%d")
        .map_err(|_| corrupt("from_day"))?;
    let fee = match (row.opt_i64("amount_micro_usd")?, row.opt_text("period")?) {
        (None, None) => None,
        (Some(amount), Some(p)) if p == "month" => Some(Fee::monthly(amount)),
        _ => return Err(corrupt("fee")),
    };
    Ok(FeeChange { from, fee })
}

pub(crate) fn statement_row<R: ReadRow>(row: &R) -> StoreResult<Statement> {
    row.json("statement")
}

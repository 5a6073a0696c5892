//! Reading PostgreSQL columns into domain values. The conversions both
//! backends share live in [`crate::codec`] and are re-exported here.
//!
//! The driver decodes strictly by column type: integers are read from
//! `BIGINT` as `i64` and narrowed here, and JSONB columns are selected as
//! `col::text` and parsed with serde (the driver's JSON support is not
//! compiled in). Written JSON goes in as text, cast with `$n::jsonb`.

use aicarpool_core::org::GroupRole;
use aicarpool_core::store::StoreResult;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};

pub(crate) use crate::codec::corrupt;
use crate::codec::time;
pub(crate) use crate::codec::{
    db_err, int, json, mode, mode_str, ms, ms_ceil, owner, owner_cols, platform, preset, preset_str,
};

/// Reads column `col`, mapping decode failures to `Backend`.
pub(crate) fn get<'r, T>(row: &'r PgRow, col: &str) -> StoreResult<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(col).map_err(db_err)
}

pub(crate) fn get_time(row: &PgRow, col: &str) -> StoreResult<DateTime<Utc>> {
    time(get(row, col)?)
}

pub(crate) fn get_opt_time(row: &PgRow, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
    get::<Option<i64>>(row, col)?.map(time).transpose()
}

/// A JSONB column, selected as `col::text AS col`.
pub(crate) fn get_json<T: DeserializeOwned>(row: &PgRow, col: &str) -> StoreResult<T> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|_| corrupt(col))
}

/// Reads a `BIGINT` column into a narrower or unsigned type.
pub(crate) fn get_int<T: TryFrom<i64>>(row: &PgRow, col: &str) -> StoreResult<T> {
    T::try_from(get::<i64>(row, col)?).map_err(|_| corrupt(col))
}

pub(crate) fn get_opt_int<T: TryFrom<i64>>(row: &PgRow, col: &str) -> StoreResult<Option<T>> {
    get::<Option<i64>>(row, col)?
        .map(|v| T::try_from(v).map_err(|_| corrupt(col)))
        .transpose()
}

pub(crate) fn role(row: &PgRow, col: &str) -> StoreResult<GroupRole> {
    GroupRole::parse(&get::<String>(row, col)?).ok_or_else(|| corrupt(col))
}

/// `u32` values go into `BIGINT` columns (PostgreSQL has no unsigned
/// types and `INTEGER` stops at 2³¹ − 1).
pub(crate) fn wide(v: u32) -> i64 {
    i64::from(v)
}

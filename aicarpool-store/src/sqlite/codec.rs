//! Reading SQLite columns into domain values. The conversions both
//! backends share live in [`crate::codec`] and are re-exported here.

use aicarpool_core::org::GroupRole;
use aicarpool_core::store::StoreResult;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

use crate::codec::{corrupt, time};
pub(crate) use crate::codec::{
    db_err, int, json, mode, mode_str, ms, ms_ceil, owner, owner_cols, platform, preset, preset_str,
};

/// Reads column `col`, mapping decode failures to `Backend`.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, col: &str) -> StoreResult<T>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(col).map_err(db_err)
}

pub(crate) fn get_time(row: &SqliteRow, col: &str) -> StoreResult<DateTime<Utc>> {
    time(get(row, col)?)
}

pub(crate) fn get_opt_time(row: &SqliteRow, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
    get::<Option<i64>>(row, col)?.map(time).transpose()
}

/// JSON is stored as text.
pub(crate) fn get_json<T: DeserializeOwned>(row: &SqliteRow, col: &str) -> StoreResult<T> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|_| corrupt(col))
}

/// Reads an integer column into a narrower or unsigned type.
pub(crate) fn get_int<T: TryFrom<i64>>(row: &SqliteRow, col: &str) -> StoreResult<T> {
    T::try_from(get::<i64>(row, col)?).map_err(|_| corrupt(col))
}

pub(crate) fn get_opt_int<T: TryFrom<i64>>(row: &SqliteRow, col: &str) -> StoreResult<Option<T>> {
    get::<Option<i64>>(row, col)?
        .map(|v| T::try_from(v).map_err(|_| corrupt(col)))
        .transpose()
}

pub(crate) fn role(row: &SqliteRow, col: &str) -> StoreResult<GroupRole> {
    GroupRole::parse(&get::<String>(row, col)?).ok_or_else(|| corrupt(col))
}

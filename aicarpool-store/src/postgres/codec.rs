//! How the PostgreSQL driver reads a column: [`ReadRow`] for [`PgRow`].
//! The row mappers built on it are shared with SQLite
//! ([`crate::codec::rows`]); the conversions both backends share live in
//! [`crate::codec`] and are re-exported here.
//!
//! The driver decodes strictly by column type: integers are read from
//! `BIGINT` as `i64` (and narrowed by the shared reads) or from `INTEGER`
//! as `i32`, and JSONB columns are selected as `col::text` and parsed with
//! serde (the driver's JSON support is not compiled in). Written JSON goes
//! in as text, cast with `$n::jsonb`.

use sqlx::postgres::PgRow;

use crate::codec::decode_columns;
pub(crate) use crate::codec::{
    db_err, int, json, mode, mode_str, ms, ms_ceil, owner_cols, preset_str, ReadRow,
};

impl ReadRow for PgRow {
    // `INTEGER` columns (priorities) decode only as `i32`.
    decode_columns! {
        text: String,
        opt_text: Option<String>,
        i64: i64,
        opt_i64: Option<i64>,
        i32: i32,
        opt_i32: Option<i32>,
        bool: bool,
        bytes: Vec<u8>,
    }
}

/// `u32` values go into `BIGINT` columns (PostgreSQL has no unsigned
/// types and `INTEGER` stops at 2³¹ − 1).
pub(crate) fn wide(v: u32) -> i64 {
    i64::from(v)
}

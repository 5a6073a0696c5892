//! How the SQLite driver reads a column: [`ReadRow`] for [`SqliteRow`].
//! The row mappers built on it are shared with PostgreSQL
//! ([`crate::codec::rows`]); the conversions both backends share live in
//! [`crate::codec`] and are re-exported here.

use sqlx::sqlite::SqliteRow;

use crate::codec::decode_columns;
pub(crate) use crate::codec::{
    db_err, int, json, mode, mode_str, ms, ms_ceil, owner_cols, preset_str, ReadRow,
};

/// Every integer is 64-bit in SQLite; `i32` keeps the default, which
/// narrows and refuses what does not fit.
impl ReadRow for SqliteRow {
    decode_columns! {
        text: String,
        opt_text: Option<String>,
        i64: i64,
        opt_i64: Option<i64>,
        bool: bool,
        bytes: Vec<u8>,
    }
}

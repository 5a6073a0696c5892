//! Conversions every SQL backend shares: driver errors to store errors,
//! timestamps to unix milliseconds, values to JSON text, enums to the
//! names the schemas store, and reading a result row ([`ReadRow`]).
//!
//! The split between the backends: each driver has its own row type, so
//! `sqlite/codec.rs` and `postgres/codec.rs` only say how it reads the
//! few primitive column types ([`ReadRow`]'s required methods). Everything
//! read on top of them (times, JSON, narrowed integers) is here, and the
//! row mappers that turn a row into a domain value are in [`rows`], used
//! by both backends. The SQL itself, transactions and locking stay with
//! each backend, except the request log's, which both write alike
//! ([`request_log`]).

use aicarpool_core::account::{AccountOwner, Platform, Preset};
use aicarpool_core::binding::BindingMode;
use aicarpool_core::store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) mod fares;
pub(crate) mod request_log;
pub(crate) mod rows;

/// Maps a driver error onto the store's errors. Messages name tables and
/// columns, never values, so no secret can leak through them.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_owned())
        }
        // A row naming a parent that does not exist (a key for an unknown
        // group, a binding listing an unknown account).
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::Backend(e.to_string()),
    }
}

/// A stored value the domain cannot take back: the database was written
/// by something else, or by hand.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("corrupt row: bad {what}"))
}

/// Stored timestamps are unix milliseconds; finer parts are dropped.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t` rounded up to the millisecond. Stored times are whole
/// milliseconds, so `at >= ceil(t)` ⇔ `at >= t` and `at < ceil(t)` ⇔ `at < t`.
pub(crate) fn ms_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_millis();
    if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
        floor
    } else {
        floor.saturating_add(1)
    }
}

fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt("timestamp"))
}

pub(crate) fn json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// Integer columns are signed 64-bit in both databases; larger counters
/// are refused rather than wrapped.
pub(crate) fn int(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{v} is too large to store")))
}

/// A result row of either backend, read by column name.
///
/// The drivers decode strictly by column type, so each backend implements
/// the primitive reads for its row type (decode failures and `NULL` in a
/// non-optional read become `Backend` errors); the typed reads are
/// written once here on top of them.
pub(crate) trait ReadRow {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    /// A 64-bit integer column (`INTEGER` in SQLite, `BIGINT` in PostgreSQL).
    fn i64(&self, col: &str) -> StoreResult<i64>;
    fn opt_i64(&self, col: &str) -> StoreResult<Option<i64>>;
    fn bool(&self, col: &str) -> StoreResult<bool>;
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;

    /// A 32-bit integer column (PostgreSQL's `INTEGER`). SQLite keeps
    /// every integer in 64 bits, so by default it is read and narrowed.
    fn i32(&self, col: &str) -> StoreResult<i32> {
        self.int(col)
    }

    fn opt_i32(&self, col: &str) -> StoreResult<Option<i32>> {
        self.opt_int(col)
    }

    /// Reads a 64-bit integer column into a narrower or unsigned type.
    fn int<T: TryFrom<i64>>(&self, col: &str) -> StoreResult<T> {
        T::try_from(self.i64(col)?).map_err(|_| corrupt(col))
    }

    fn opt_int<T: TryFrom<i64>>(&self, col: &str) -> StoreResult<Option<T>> {
        self.opt_i64(col)?
            .map(|v| T::try_from(v).map_err(|_| corrupt(col)))
            .transpose()
    }

    /// A timestamp, stored as unix milliseconds.
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        time(self.i64(col)?)
    }

    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.opt_i64(col)?.map(time).transpose()
    }

    /// JSON read as text: SQLite stores it so, PostgreSQL's JSONB columns
    /// are selected as `col::text AS col`.
    fn json<T: DeserializeOwned>(&self, col: &str) -> StoreResult<T> {
        serde_json::from_str(&self.text(col)?).map_err(|_| corrupt(col))
    }
}

/// Writes [`ReadRow`] methods that decode a column straight into the Rust
/// type (`text: String`, …), as the driver of the row type maps it.
macro_rules! decode_columns {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            fn $name(&self, col: &str) -> aicarpool_core::store::StoreResult<$ty> {
                sqlx::Row::try_get(self, col).map_err($crate::codec::db_err)
            }
        )*
    };
}
pub(crate) use decode_columns;

pub(crate) fn platform(s: &str) -> StoreResult<Platform> {
    Ok(match s {
        "claude_oauth" => Platform::ClaudeOauth,
        "claude_api" => Platform::ClaudeApi,
        "anthropic_compatible" => Platform::AnthropicCompatible,
        "gemini" => Platform::Gemini,
        "openai_compatible" => Platform::OpenaiCompatible,
        _ => return Err(corrupt("platform")),
    })
}

pub(crate) fn preset_str(p: Preset) -> &'static str {
    match p {
        Preset::Kimi => "kimi",
        Preset::Qwen => "qwen",
        Preset::Glm => "glm",
        Preset::Deepseek => "deepseek",
        Preset::Custom => "custom",
    }
}

pub(crate) fn preset(s: &str) -> StoreResult<Preset> {
    Ok(match s {
        "kimi" => Preset::Kimi,
        "qwen" => Preset::Qwen,
        "glm" => Preset::Glm,
        "deepseek" => Preset::Deepseek,
        "custom" => Preset::Custom,
        _ => return Err(corrupt("preset")),
    })
}

/// `(owner_kind, owner_id)` columns.
pub(crate) fn owner_cols(o: &AccountOwner) -> (&'static str, &str) {
    match o {
        AccountOwner::Group(id) => ("group", id),
        AccountOwner::Enterprise(id) => ("enterprise", id),
    }
}

pub(crate) fn owner(kind: &str, id: String) -> StoreResult<AccountOwner> {
    match kind {
        "group" => Ok(AccountOwner::Group(id)),
        "enterprise" => Ok(AccountOwner::Enterprise(id)),
        _ => Err(corrupt("owner_kind")),
    }
}

pub(crate) fn mode_str(m: BindingMode) -> &'static str {
    match m {
        BindingMode::Dedicated => "dedicated",
        BindingMode::Shared => "shared",
        BindingMode::Hybrid => "hybrid",
    }
}

pub(crate) fn mode(s: &str) -> StoreResult<BindingMode> {
    Ok(match s {
        "dedicated" => BindingMode::Dedicated,
        "shared" => BindingMode::Shared,
        "hybrid" => BindingMode::Hybrid,
        _ => return Err(corrupt("binding mode")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::Duration;

    #[test]
    fn ceil_keeps_whole_milliseconds() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(ms_ceil(t), 1_700_000_000_123);
        assert_eq!(ms_ceil(t + Duration::microseconds(1)), 1_700_000_000_124);
        assert_eq!(ms(t + Duration::microseconds(999)), 1_700_000_000_123);
    }

    #[test]
    fn enum_names_match_serde() {
        for p in [
            Platform::ClaudeOauth,
            Platform::ClaudeApi,
            Platform::AnthropicCompatible,
            Platform::Gemini,
            Platform::OpenaiCompatible,
        ] {
            assert_eq!(platform(p.as_str()).unwrap(), p);
            assert_eq!(json(&p).unwrap(), format!("\"{}\"", p.as_str()));
        }
        for p in [
            Preset::Kimi,
            Preset::Qwen,
            Preset::Glm,
            Preset::Deepseek,
            Preset::Custom,
        ] {
            assert_eq!(preset(preset_str(p)).unwrap(), p);
            assert_eq!(json(&p).unwrap(), format!("\"{}\"", preset_str(p)));
        }
        for m in [
            BindingMode::Dedicated,
            BindingMode::Shared,
            BindingMode::Hybrid,
        ] {
            assert_eq!(mode(mode_str(m)).unwrap(), m);
            assert_eq!(json(&m).unwrap(), format!("\"{}\"", mode_str(m)));
        }
        assert!(platform("nope").is_err());
    }

    /// The migrations are plain SQL written out per reason; the queries
    /// derive the same names from `RefusalReason::ALL`, so a new reason
    /// needs its column in both.
    #[test]
    fn refusal_columns_are_in_both_migrations() {
        use aicarpool_core::usage::RefusalReason;
        for sql in [
            include_str!("../migrations/sqlite/0010_refusal_counts.sql"),
            include_str!("../migrations/postgres/0010_refusal_counts.sql"),
        ] {
            for r in RefusalReason::ALL {
                let col = rows::refused_col(r);
                assert!(sql.contains(&format!("ADD COLUMN {col} ")), "{col}");
                assert!(sql.contains(&format!("{} THEN 1", rows::refused_when(r))));
            }
        }
    }

    /// A row of text columns, `None` standing for `NULL`.
    struct Row(Vec<(&'static str, Option<&'static str>)>);

    impl Row {
        fn cell(&self, col: &str) -> Option<&'static str> {
            self.0.iter().find(|(c, _)| *c == col).and_then(|(_, v)| *v)
        }
    }

    impl ReadRow for Row {
        fn text(&self, col: &str) -> StoreResult<String> {
            self.opt_text(col)?.ok_or_else(|| corrupt(col))
        }

        fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
            Ok(self.cell(col).map(str::to_owned))
        }

        fn i64(&self, col: &str) -> StoreResult<i64> {
            self.opt_i64(col)?.ok_or_else(|| corrupt(col))
        }

        fn opt_i64(&self, col: &str) -> StoreResult<Option<i64>> {
            self.cell(col)
                .map(|v| v.parse().map_err(|_| corrupt(col)))
                .transpose()
        }

        fn bool(&self, col: &str) -> StoreResult<bool> {
            Ok(self.i64(col)? != 0)
        }

        fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
            Ok(self.text(col)?.into_bytes())
        }
    }

    #[test]
    fn typed_reads_refuse_what_the_domain_cannot_take() {
        let row = Row(vec![
            ("uses", Some("7")),
            ("negative", Some("-1")),
            ("huge", Some("4294967296")),
            ("missing", None),
            ("at", Some("1700000000123")),
            ("far", Some("9223372036854775807")),
            ("list", Some(r#"["a","b"]"#)),
            ("garbled", Some("[")),
        ]);
        assert_eq!(row.int::<u32>("uses").unwrap(), 7);
        assert!(row.int::<u32>("negative").is_err());
        assert!(row.i32("huge").is_err());
        assert_eq!(row.opt_int::<u32>("missing").unwrap(), None);
        assert!(row.opt_int::<u32>("huge").is_err());
        assert_eq!(
            row.time("at").unwrap().timestamp_millis(),
            1_700_000_000_123
        );
        assert!(row.time("far").is_err());
        assert_eq!(row.opt_time("missing").unwrap(), None);
        assert_eq!(row.json::<Vec<String>>("list").unwrap(), ["a", "b"]);
        let err = row.json::<Vec<String>>("garbled").unwrap_err();
        assert!(err.to_string().contains("garbled"), "{err}");
    }

    #[test]
    fn oversized_counters_are_refused() {
        assert!(int(u64::MAX).is_err());
        assert_eq!(int(42).unwrap(), 42);
    }
}

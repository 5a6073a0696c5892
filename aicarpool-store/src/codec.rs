//! Conversions every SQL backend shares: driver errors to store errors,
//! timestamps to unix milliseconds, values to JSON text, enums to the
//! names the schemas store. Reading a column is backend-specific (each
//! driver has its own row type) and lives in `sqlite/codec.rs` and
//! `postgres/codec.rs`, next to the helpers re-exported from here.

use aicarpool_core::account::{AccountOwner, Platform, Preset};
use aicarpool_core::binding::BindingMode;
use aicarpool_core::store::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use serde::Serialize;

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

pub(crate) fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
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

    #[test]
    fn oversized_counters_are_refused() {
        assert!(int(u64::MAX).is_err());
        assert_eq!(int(42).unwrap(), 42);
    }
}

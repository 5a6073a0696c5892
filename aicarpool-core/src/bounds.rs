//! Bounds on the strings clients send that the gateway keeps or matches.
//!
//! A client names its model, its session and itself; the gateway stores
//! the model in every usage record, matches the user agent against a key's
//! allowed clients and hashes the session id. Left unbounded, one request
//! with a megabyte `model` grows every record and export by a megabyte, and
//! CR/LF in a stored name breaks the CSV and the logs that show it. So:
//!
//! | string     | bound                                  | when over it   |
//! |------------|----------------------------------------|----------------|
//! | model      | 1–128 bytes of `A–Z a–z 0–9 . _ : / @ + -` | refused (400) |
//! | session id | 256 bytes, no control characters       | ignored        |
//! | user agent | 256 bytes, control characters dropped  | cut            |
//!
//! ```
//! use aicarpool_core::bounds;
//!
//! assert!(bounds::model_name("claude-sonnet-4-5@20250929").is_ok());
//! assert!(bounds::model_name("gpt-4o\r\nX-Injected: 1").is_err());
//! assert_eq!(bounds::clip("Claude\u{7}Code/2.0", 256), "ClaudeCode/2.0");
//! ```

use std::borrow::Cow;

/// Longest model name accepted, in bytes. The longest real names (Bedrock
/// and Vertex ids with a date and a version) are well under 100.
pub const MAX_MODEL_LEN: usize = 128;

/// Longest session id the gateway hashes. Claude Code's are UUIDs.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// Longest user agent the gateway matches or keeps.
pub const MAX_USER_AGENT_LEN: usize = 256;

/// Longest id (key, user, group, account) a usage record keeps. Ids are
/// the gateway's own, so this only guards an embedder's mistakes.
pub const MAX_ID_LEN: usize = 64;

/// An email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Why a model name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelNameError {
    #[error("model: must not be empty")]
    Empty,
    #[error("model: at most {MAX_MODEL_LEN} bytes")]
    TooLong,
    #[error("model: only letters, digits and . _ : / @ + - are allowed")]
    BadCharacter,
}

/// Checks a model name a client sent.
pub fn model_name(model: &str) -> Result<(), ModelNameError> {
    if model.is_empty() {
        return Err(ModelNameError::Empty);
    }
    if model.len() > MAX_MODEL_LEN {
        return Err(ModelNameError::TooLong);
    }
    if !model.bytes().all(is_model_byte) {
        return Err(ModelNameError::BadCharacter);
    }
    Ok(())
}

fn is_model_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'@' | b'+' | b'-')
}

/// Whether a session id is one the gateway uses; a longer one, or one with
/// control characters, is no real client's and is ignored.
pub fn session_id_usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SESSION_ID_LEN && !id.chars().any(char::is_control)
}

/// `s` without control characters, cut to at most `max` bytes on a
/// character boundary. Borrows when nothing changes (the common case).
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max && !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// [`clip`] in place, for owned fields about to be stored.
pub fn clip_owned(s: &mut String, max: usize) {
    if let Cow::Owned(cut) = clip(s, max) {
        *s = cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_model_names_pass() {
        for m in [
            "claude-sonnet-4-5-20250929",
            "claude-3-5-haiku@20241022",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "gemini-2.5-pro",
            "deepseek/deepseek-chat",
            "gpt-4o-mini",
            "qwen3-coder-plus",
            "kimi-k2-0905-preview",
            "glm-4.5",
            "models/gemini-2.0-flash",
            "o3+tools",
        ] {
            assert_eq!(model_name(m), Ok(()), "{m}");
        }
    }

    #[test]
    fn hostile_model_names_are_refused() {
        assert_eq!(model_name(""), Err(ModelNameError::Empty));
        assert_eq!(
            model_name(&"a".repeat(MAX_MODEL_LEN + 1)),
            Err(ModelNameError::TooLong)
        );
        assert_eq!(model_name(&"a".repeat(MAX_MODEL_LEN)), Ok(()));
        for m in ["a\r\nb", "a b", "a\"b", "a,b", "模型", "a\u{0}"] {
            assert_eq!(model_name(m), Err(ModelNameError::BadCharacter), "{m:?}");
        }
    }

    #[test]
    fn session_ids_over_the_bound_are_ignored() {
        assert!(session_id_usable("3f1e2d4c-1111-2222-3333-444455556666"));
        assert!(!session_id_usable(""));
        assert!(!session_id_usable(&"s".repeat(MAX_SESSION_ID_LEN + 1)));
        assert!(!session_id_usable("a\nb"));
    }

    #[test]
    fn clip_cuts_on_a_character_boundary() {
        assert!(matches!(clip("claude-cli/2.0", 256), Cow::Borrowed(_)));
        assert_eq!(clip("ééé", 5), "éé");
        assert_eq!(clip("a\r\nb\tc", 10), "abc");
        let mut s = "x".repeat(1000);
        clip_owned(&mut s, MAX_USER_AGENT_LEN);
        assert_eq!(s.len(), MAX_USER_AGENT_LEN);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzzing::CASES))]

        #[test]
        fn clip_never_exceeds_its_bound(s in any::<String>(), max in 0usize..300) {
            let c = clip(&s, max);
            prop_assert!(c.len() <= max);
            prop_assert!(!c.chars().any(char::is_control));
        }

        #[test]
        fn an_accepted_model_is_short_and_plain(s in any::<String>()) {
            if model_name(&s).is_ok() {
                prop_assert!(!s.is_empty() && s.len() <= MAX_MODEL_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }
}

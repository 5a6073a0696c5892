//! Short, URL-safe identifiers.
//!
//! Ids never contain `_`, so they can sit between the underscores of a member
//! key (`aicp_<groupId>_<userId>_<secret>`) without ambiguity.

use rand::{distributions::Alphanumeric, Rng};

/// Length of generated ids: 12 base62 characters, about 71 bits.
pub const ID_LEN: usize = 12;

/// The longest id accepted from outside (imported or hand-made ids).
pub const MAX_ID_LEN: usize = 64;

/// A new random id of [`ID_LEN`] alphanumeric characters.
pub fn new_id() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(ID_LEN)
        .map(char::from)
        .collect()
}

/// Whether `s` can be used as an id: 1 to [`MAX_ID_LEN`] characters of
/// `[A-Za-z0-9-]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), ID_LEN);
        assert!(is_valid_id(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn underscores_and_empty_are_rejected() {
        assert!(!is_valid_id("a_b"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"x".repeat(MAX_ID_LEN + 1)));
        assert!(is_valid_id("abc-123"));
    }
}

//! Thought signatures carried where the other side keeps them.
//!
//! - **Gemini account, other client.** Gemini 3 signs its function calls
//!   (`thoughtSignature`) and wants the signature back on the call next
//!   turn, but Anthropic and OpenAI clients keep only the call id. The
//!   signature rides in the id (`gsig_<signature>`, or
//!   `gsig_<signature>~<gemini id>` when Gemini gave the call an id) and
//!   is taken out again when the history is written for Gemini. Calls
//!   without one (history from another upstream) get Gemini's documented
//!   placeholder, so Gemini 3 does not refuse the foreign history.
//! - **Gemini client, Claude account.** Claude wants its signed thinking
//!   block back before a tool call, but Gemini CLI drops thought parts
//!   from its history and keeps only a call's `thoughtSignature`. The
//!   thinking text and signature are packed into the call's
//!   `thoughtSignature` (`acpthink.<base64url JSON>`) and unpacked into a
//!   thinking part when the history comes back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::translate::neutral::Part;

/// Tool call ids that carry a Gemini thought signature start with this.
const SIGNED_ID: &str = "gsig_";
/// Separates the signature from Gemini's own call id (base64 has no `~`).
const ID_SEP: char = '~';
/// A `thoughtSignature` that packs a foreign thinking block.
const PACKED: &str = "acpthink.";
/// What Gemini takes in place of a signature it did not make.
pub const PLACEHOLDER: &str = "skip_thought_signature_validator";

/// The neutral id of a Gemini call: its signature and its own id folded in.
pub fn call_id(
    signature: Option<&str>,
    gemini_id: Option<&str>,
    fallback: impl FnOnce() -> String,
) -> String {
    match (signature, gemini_id) {
        (Some(sig), Some(id)) => format!("{SIGNED_ID}{sig}{ID_SEP}{id}"),
        (Some(sig), None) => format!("{SIGNED_ID}{sig}"),
        (None, Some(id)) => id.to_owned(),
        (None, None) => fallback(),
    }
}

/// A neutral call id as Gemini's `id` and `thoughtSignature`. A signed id
/// without Gemini's own id has no `id` on the wire (Gemini matches the
/// response by name).
pub fn split_call_id(id: &str) -> (Option<&str>, Option<&str>) {
    match id.strip_prefix(SIGNED_ID) {
        Some(rest) => match rest.split_once(ID_SEP) {
            Some((sig, gemini_id)) => (Some(gemini_id), Some(sig)),
            None => (None, Some(rest)),
        },
        None => (Some(id), None),
    }
}

/// A thinking block packed into a `thoughtSignature`.
pub fn pack_thinking(text: &str, signature: &str) -> String {
    let json = json!({"text": text, "signature": signature}).to_string();
    format!("{PACKED}{}", URL_SAFE_NO_PAD.encode(json))
}

/// The thinking block a `thoughtSignature` packs, if it packs one.
pub fn unpack_thinking(sig: &str) -> Option<Part> {
    let bytes = URL_SAFE_NO_PAD.decode(sig.strip_prefix(PACKED)?).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some(Part::Thinking {
        text: v.get("text")?.as_str()?.to_owned(),
        signature: Some(v.get("signature")?.as_str()?.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_signatures_both_ways() {
        let fallback = || "call_x".to_owned();
        assert_eq!(call_id(None, None, fallback), "call_x");
        assert_eq!(call_id(None, Some("g1"), fallback), "g1");
        let signed = call_id(Some("c2lnbmF0dXJl+/="), None, fallback);
        assert_eq!(split_call_id(&signed), (None, Some("c2lnbmF0dXJl+/=")));
        let both = call_id(Some("c2ln"), Some("g1"), fallback);
        assert_eq!(split_call_id(&both), (Some("g1"), Some("c2ln")));
        assert_eq!(split_call_id("toolu_1"), (Some("toolu_1"), None));
    }

    #[test]
    fn thinking_survives_the_signature() {
        let packed = pack_thinking("I should read it", "EqQBCkYI");
        assert_eq!(
            unpack_thinking(&packed),
            Some(Part::Thinking {
                text: "I should read it".into(),
                signature: Some("EqQBCkYI".into())
            })
        );
        assert_eq!(unpack_thinking("CiQB0e2Kb"), None);
        assert_eq!(unpack_thinking("acpthink.!!"), None);
    }
}

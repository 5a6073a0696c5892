//! Which conversation a request belongs to, for sticky sessions.
//!
//! A conversation's prompt cache lives on the account that served it, so
//! its turns should keep going there. The id comes from, in order:
//! `X-Claude-Code-Session-Id`; the session inside `metadata.user_id` (new
//! Claude Code sends a JSON string `{"device_id":…,"account_uuid":…,
//! "session_id":…}`, older ones `user_<hash>_account_<uuid>_session_<uuid>`);
//! `prompt_cache_key`; else a digest of the system prompt and the first
//! user message (their text only: `cache_control` markers move between
//! turns). An id longer than [`bounds::MAX_SESSION_ID_LEN`] or with control
//! characters is no real client's and is skipped. The gateway borrows these fields while it peeks at `model`, so
//! the body is parsed once; only the last fallback reads them again.

use std::borrow::Cow;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use http::HeaderMap;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::bounds;

/// The header Claude Code sends with every request of a session.
pub const SESSION_HEADER: &str = "x-claude-code-session-id";

/// Where a session id was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    Header,
    Metadata,
    PromptCacheKey,
    Content,
}

/// A conversation, as a digest of its id (never the id itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionId {
    pub source: SessionSource,
    digest: u64,
}

/// A conversation scoped to one member key: two members who happen to send
/// the same session id do not share a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(pub u64);

impl SessionId {
    /// From an explicit id string (header, metadata, cache key). The same id
    /// gives the same digest whichever field carried it.
    pub fn from_id(source: SessionSource, id: &str) -> Self {
        let mut h = DefaultHasher::new();
        "id".hash(&mut h);
        id.hash(&mut h);
        Self {
            source,
            digest: h.finish(),
        }
    }

    pub fn scoped(&self, key_id: &str) -> SessionKey {
        let mut h = DefaultHasher::new();
        key_id.hash(&mut h);
        self.digest.hash(&mut h);
        SessionKey(h.finish())
    }
}

/// The body fields session extraction may read, borrowed from the body.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionHints<'a> {
    pub metadata: Option<&'a RawValue>,
    pub prompt_cache_key: Option<&'a RawValue>,
    pub system: Option<&'a RawValue>,
    /// The `content` of the first user message.
    pub first_user_content: Option<&'a RawValue>,
}

/// The session of a request, if it has one.
pub fn extract(headers: &HeaderMap, hints: &SessionHints<'_>) -> Option<SessionId> {
    if let Some(id) = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| bounds::session_id_usable(s))
    {
        return Some(SessionId::from_id(SessionSource::Header, id));
    }
    if let Some(id) = hints
        .metadata
        .and_then(session_in_metadata)
        .filter(|s| bounds::session_id_usable(s))
    {
        return Some(SessionId::from_id(SessionSource::Metadata, &id));
    }
    if let Some(key) = hints
        .prompt_cache_key
        .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok())
        .filter(|k| !k.trim().is_empty() && bounds::session_id_usable(k))
    {
        return Some(SessionId::from_id(SessionSource::PromptCacheKey, &key));
    }
    content_digest(hints.system, hints.first_user_content)
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UserIdJson<'a> {
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
}

fn session_in_metadata(raw: &RawValue) -> Option<String> {
    let meta: Metadata<'_> = serde_json::from_str(raw.get()).ok()?;
    session_in_user_id(meta.user_id.as_deref()?)
}

/// The session inside a `metadata.user_id` value, in either form.
pub fn session_in_user_id(user_id: &str) -> Option<String> {
    let user_id = user_id.trim();
    let found = if user_id.starts_with('{') {
        let parsed: UserIdJson<'_> = serde_json::from_str(user_id).ok()?;
        parsed.session_id.map(Cow::into_owned)
    } else {
        let at = user_id.rfind("_session_")?;
        Some(user_id[at + "_session_".len()..].to_owned())
    };
    found.filter(|s| !s.trim().is_empty())
}

/// A digest of the system prompt and first user message, their text only.
fn content_digest(
    system: Option<&RawValue>,
    first_user_content: Option<&RawValue>,
) -> Option<SessionId> {
    let mut h = DefaultHasher::new();
    "content".hash(&mut h);
    let mut any = false;
    if let Some(raw) = system {
        any |= hash_text(raw, &mut h);
    }
    "|".hash(&mut h);
    if let Some(raw) = first_user_content {
        any |= hash_text(raw, &mut h);
    }
    any.then(|| SessionId {
        source: SessionSource::Content,
        digest: h.finish(),
    })
}

/// Hashes a string, or the `text` of each block of an array (other blocks
/// by their type); returns whether there was anything.
fn hash_text(raw: &RawValue, h: &mut DefaultHasher) -> bool {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Blocks(#[serde(borrow)] Vec<Block<'a>>),
    }
    #[derive(Deserialize)]
    struct Block<'a> {
        #[serde(borrow, rename = "type", default)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        text: Option<Cow<'a, str>>,
    }
    match serde_json::from_str::<Content<'_>>(raw.get()) {
        Ok(Content::Text(t)) => {
            t.hash(h);
            !t.is_empty()
        }
        Ok(Content::Blocks(blocks)) => {
            for b in &blocks {
                b.kind.hash(h);
                b.text.hash(h);
            }
            !blocks.is_empty()
        }
        Err(_) => false,
    }
}

/// The `content` of the first message whose role is `user`, borrowed;
/// tolerant of any JSON (a malformed `messages` is the upstream's to refuse).
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstUserMessage<'a>(pub Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstUserMessage<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient(FirstUserVisitor))
    }
}

/// A message's role and content, read in the same pass as the body.
#[derive(Default)]
struct MessagePeek<'a> {
    user: bool,
    content: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for MessagePeek<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient(MessageVisitor))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum MessageField {
    Role,
    Content,
    #[serde(other)]
    Other,
}

/// Visits a JSON value that should be an array or an object; any other
/// value yields the default instead of an error.
struct Lenient<V>(V);

trait Shape<'de>: Sized {
    type Value: Default;
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| Self::Value::default())
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| Self::Value::default())
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

struct FirstUserVisitor;

impl<'de> Shape<'de> for FirstUserVisitor {
    type Value = FirstUserMessage<'de>;

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first = None;
        while first.is_none() {
            match seq.next_element::<MessagePeek<'de>>()? {
                Some(m) if m.user => first = m.content,
                Some(_) => {}
                None => return Ok(FirstUserMessage(None)),
            }
        }
        skip_seq(seq)?;
        Ok(FirstUserMessage(first))
    }
}

struct MessageVisitor;

impl<'de> Shape<'de> for MessageVisitor {
    type Value = MessagePeek<'de>;

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = MessagePeek::default();
        while let Some(field) = map.next_key::<MessageField>()? {
            match field {
                MessageField::Role => {
                    out.user = map.next_value::<&'de RawValue>()?.get() == "\"user\"";
                }
                MessageField::Content => out.content = Some(map.next_value()?),
                MessageField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

impl<'de, V: Shape<'de>> Visitor<'de> for Lenient<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.map(map)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(V::Value::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        metadata: Option<&'a RawValue>,
        #[serde(borrow, default)]
        prompt_cache_key: Option<&'a RawValue>,
        #[serde(borrow, default)]
        system: Option<&'a RawValue>,
        #[serde(borrow, default)]
        messages: FirstUserMessage<'a>,
    }

    fn session(headers: &HeaderMap, body: &str) -> Option<SessionId> {
        let p: Peek<'_> = serde_json::from_str(body).unwrap();
        let hints = SessionHints {
            metadata: p.metadata,
            prompt_cache_key: p.prompt_cache_key,
            system: p.system,
            first_user_content: p.messages.0,
        };
        extract(headers, &hints)
    }

    const UUID: &str = "69deb0dc-158a-401e-9693-c26a5d3d7718";

    #[test]
    fn header_then_metadata_forms_agree() {
        let mut h = HeaderMap::new();
        h.insert(SESSION_HEADER, UUID.parse().unwrap());
        let by_header = session(&h, "{}").unwrap();
        assert_eq!(by_header.source, SessionSource::Header);

        let new_form = format!(
            r#"{{"metadata":{{"user_id":"{{\"device_id\":\"264d\",\"account_uuid\":\"\",\"session_id\":\"{UUID}\"}}"}}}}"#
        );
        let by_json = session(&HeaderMap::new(), &new_form).unwrap();
        assert_eq!(by_json.source, SessionSource::Metadata);
        assert_eq!(by_json.digest, by_header.digest);

        let old_form =
            format!(r#"{{"metadata":{{"user_id":"user_1134fac1_account__session_{UUID}"}}}}"#);
        let by_old = session(&HeaderMap::new(), &old_form).unwrap();
        assert_eq!(by_old.digest, by_header.digest);
        // A user id without a session says nothing.
        assert!(session(&HeaderMap::new(), r#"{"metadata":{"user_id":"alice"}}"#).is_none());
    }

    #[test]
    fn oversized_or_control_ids_are_skipped() {
        let long = "s".repeat(bounds::MAX_SESSION_ID_LEN + 1);
        let mut h = HeaderMap::new();
        h.insert(SESSION_HEADER, long.parse().unwrap());
        let body = format!(r#"{{"metadata":{{"user_id":"u_account__session_{UUID}"}}}}"#);
        // The header is too long: the metadata's session stands.
        assert_eq!(session(&h, &body).unwrap().source, SessionSource::Metadata);
        let body = format!(r#"{{"metadata":{{"user_id":"u_account__session_{long}"}}}}"#);
        assert!(session(&h, &body).is_none());
        let body = r#"{"prompt_cache_key":"a\u0007b"}"#;
        assert!(session(&HeaderMap::new(), body).is_none());
    }

    #[test]
    fn the_captured_claude_code_requests_carry_their_session() {
        for captured in [captured::authtoken(), captured::apikey()] {
            let (headers, body) = captured;
            let with_header = session(&headers, &body).unwrap();
            let without = session(&HeaderMap::new(), &body).unwrap();
            assert_eq!(with_header.source, SessionSource::Header);
            assert_eq!(without.source, SessionSource::Metadata);
            assert_eq!(with_header.digest, without.digest);
        }
    }

    /// The fixtures, read without the testkit (a dev-dependency of the
    /// integration tests, not of unit tests in this crate).
    mod captured {
        use super::*;

        fn load(text: &str) -> (HeaderMap, String) {
            let line: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            let mut h = HeaderMap::new();
            for pair in line["headers"].as_array().unwrap() {
                let (k, v) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
                if k.eq_ignore_ascii_case(SESSION_HEADER) {
                    h.insert(SESSION_HEADER, v.parse().unwrap());
                }
            }
            (h, line["body_json"].to_string())
        }

        pub fn authtoken() -> (HeaderMap, String) {
            load(include_str!(
                "../../../testkit/fixtures/claude_authtoken.jsonl"
            ))
        }

        pub fn apikey() -> (HeaderMap, String) {
            load(include_str!(
                "../../../testkit/fixtures/claude_apikey.jsonl"
            ))
        }
    }

    #[test]
    fn prompt_cache_key_then_content() {
        let h = HeaderMap::new();
        let s = session(&h, r#"{"prompt_cache_key":"conv-7","messages":[]}"#).unwrap();
        assert_eq!(s.source, SessionSource::PromptCacheKey);

        // The content digest ignores cache_control, which moves between turns.
        let turn1 = r#"{"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#;
        let turn2 = r#"{"system":[{"type":"text","text":"Be brief."}],
            "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},
                        {"role":"assistant","content":"hello"},{"role":"user","content":"more"}]}"#;
        let other = r#"{"system":"Be brief.","messages":[{"role":"user","content":"bye"}]}"#;
        let (a, b, c) = (
            session(&h, turn1).unwrap(),
            session(&h, turn2).unwrap(),
            session(&h, other).unwrap(),
        );
        assert_eq!(a.source, SessionSource::Content);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(session(&h, r#"{"messages":[]}"#).is_none());
    }

    #[test]
    fn scoped_to_the_key_and_tolerant_of_odd_bodies() {
        let s = SessionId::from_id(SessionSource::Header, UUID);
        assert_ne!(s.scoped("key-a"), s.scoped("key-b"));
        assert_eq!(s.scoped("key-a"), s.scoped("key-a"));
        for odd in [
            r#"{"messages":"x"}"#,
            r#"{"messages":{"a":1}}"#,
            r#"{"messages":[1,null]}"#,
        ] {
            assert!(session(&HeaderMap::new(), odd).is_none(), "{odd}");
        }
        let skip_assistant =
            r#"{"messages":[{"role":"assistant","content":"a"},{"role":"user","content":"u"}]}"#;
        assert!(session(&HeaderMap::new(), skip_assistant).is_some());
    }
}

//! Property tests of every parser that reads client or upstream input:
//! whatever the bytes, each one answers (a value or a refusal) and never
//! panics. The gateway's own request parsers (timeouts, paths, presented
//! keys, the fields it peeks at in bodies) are in `gateway/fuzz.rs`, next
//! to what they can reach.
//!
//! Each property runs [`CASES`] generated inputs (`PROPTEST_CASES` does not
//! apply: the count is fixed so a run's executions are known). Inputs mix
//! arbitrary bytes with fragments of the real formats, so the parsers get
//! past their first check.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use crate::key::{glob_match, MemberKey};
use crate::provider;
use crate::router::session::{self, SessionHints};
use crate::router::window::RateSignals;
use crate::stream::anthropic::{self, AnthropicStreamUsage};
use crate::stream::frames::SseFrames;
use crate::stream::gemini::{self, GeminiStreamUsage};
use crate::stream::openai::{self, ChatStreamUsage, ChatUsageStrip, ResponsesStreamUsage};
use crate::stream::tap::{StreamTap, Summarize};
use crate::stream::{EventSink, SseObserver};

/// Generated inputs per property.
pub(crate) const CASES: u32 = 4096;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made of the pieces a parser looks for, and anything else.
pub(crate) fn texty(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(pieces).prop_map(str::to_owned),
            1 => any::<String>(),
            1 => "[0-9eE.+-]{1,30}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// JSON-like bytes: mostly well-formed values with the fields the parsers
/// read, sometimes cut short or with raw bytes spliced in.
pub(crate) fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "null",
        "true",
        "-1",
        "1e999",
        "18446744073709551616",
        "\"model\"",
        "\"usage\"",
        "\"input_tokens\"",
        "\"output_tokens\"",
        "\"prompt_tokens\"",
        "\"cache_read_input_tokens\"",
        "\"usageMetadata\"",
        "\"promptTokenCount\"",
        "\"error\"",
        "\"message\"",
        "\"type\"",
        "\"details\"",
        "\"retryDelay\"",
        "\"37s\"",
        "\"stream\"",
        "\"max_tokens\"",
        "\"metadata\"",
        "\"user_id\"",
        "\"messages\"",
        "\"role\"",
        "\"user\"",
        "\"content\"",
        "\"text\"",
        "\"system\"",
        "\"prompt_cache_key\"",
        "\"generationConfig\"",
        "\"maxOutputTokens\"",
        "\"response\"",
        "\"delta\"",
        "\\u0000",
        "\\ud800",
        " ",
    ];
    prop_oneof![
        3 => texty(PIECES).prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// A stream cut into arbitrary chunks: SSE lines, JSON and noise.
fn sse_chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    const PIECES: &[&str] = &[
        "event: ",
        "data: ",
        "data:",
        ": ping\n",
        "\n",
        "\r\n",
        "\r",
        "\n\n",
        "id: 1\n",
        "retry: 99999999999999999999\n",
        "message_start",
        "message_delta",
        "error",
        "content_block_delta",
        "response.completed",
        "[DONE]",
        r#"{"type":"message_start","message":{"usage":{"input_tokens":5}}}"#,
        r#"{"type":"message_delta","usage":{"output_tokens":18446744073709551615}}"#,
        r#"{"usage":{"prompt_tokens":-3,"completion_tokens":1e400}}"#,
        r#"{"usageMetadata":{"promptTokenCount":7}}"#,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#,
        r#"{"type":"response.completed","response":{"usage":{"input_tokens":1}}}"#,
    ];
    prop::collection::vec(
        prop_oneof![
            4 => texty(PIECES).prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ],
        0..16,
    )
}

/// Header maps with the names the gateway reads and values of any bytes a
/// header may hold.
pub(crate) fn headers(names: &'static [&'static str]) -> impl Strategy<Value = HeaderMap> {
    const VALUES: &[&str] = &[
        "0",
        "-1",
        "1e308",
        "inf",
        "NaN",
        "99999999999999999999999",
        "18446744073709551615",
        "-9223372036854775808",
        "9223372036854775807",
        "Thu, 01 Jan 2026 00:01:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "allowed",
        "rejected",
        "allowed_warning",
        "1.02",
        "Bearer ",
        "aicp_",
        "_",
        " ",
        ",",
    ];
    prop::collection::vec(
        (
            prop::sample::select(names),
            texty(VALUES).prop_map(|v| v.into_bytes()),
        ),
        0..8,
    )
    .prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            // Only bytes a header can carry; the rest never reaches us.
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        h
    })
}

const LIMIT_HEADERS: &[&str] = &[
    "retry-after",
    "anthropic-ratelimit-unified-status",
    "anthropic-ratelimit-unified-reset",
    "anthropic-ratelimit-unified-5h-status",
    "anthropic-ratelimit-unified-5h-reset",
    "anthropic-ratelimit-unified-5h-utilization",
    "anthropic-ratelimit-unified-7d-status",
    "anthropic-ratelimit-unified-7d-reset",
    "anthropic-ratelimit-unified-7d-utilization",
];

fn observe<S: EventSink>(sink: S, chunks: &[Vec<u8>]) -> S {
    let mut o = SseObserver::new(sink);
    for c in chunks {
        o.feed(c);
    }
    o.finish()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn member_keys(s in texty(&["aicp_", "_", "grp1", "usr1", "a", "-", "\u{0}", "é"])) {
        if let Ok(k) = MemberKey::parse(&s) {
            // What parses is a key that prints back as itself.
            prop_assert_eq!(MemberKey::parse(&k.expose()).unwrap(), k);
        }
    }

    #[test]
    fn client_globs(p in texty(&["*", "?", "claude-cli/", "a"]), t in any::<String>()) {
        let _ = glob_match(&p, &t);
    }

    #[test]
    fn retry_after_and_unified_headers(h in headers(LIMIT_HEADERS), now in any::<u64>()) {
        let _ = provider::retry_after(&h);
        let s = RateSignals::from_headers(&h, now);
        let _ = s.rate_limited_until_ms(now);
        let _ = s.or_wait(Some(std::time::Duration::MAX), now);
        if let Some(u) = s.unified {
            let _ = (u.warns(), u.soonest_reset(), u.rejected_until());
        }
    }

    #[test]
    fn session_headers_and_user_ids(
        h in headers(&[session::SESSION_HEADER]),
        user_id in texty(&["{", "}", "\"session_id\"", ":", "_session_", "user_", "_account_"]),
    ) {
        let _ = session::extract(&h, &SessionHints::default());
        let _ = session::session_in_user_id(&user_id);
    }

    #[test]
    fn sse_frames(chunks in sse_chunks()) {
        let mut frames = SseFrames::new();
        for c in &chunks {
            for e in frames.push(c) {
                let _ = e.text();
            }
        }
        let _ = frames.finish();
    }

    #[test]
    fn stream_usage_of_every_protocol(chunks in sse_chunks()) {
        let _ = observe(AnthropicStreamUsage::default(), &chunks);
        let _ = observe(ChatStreamUsage::default(), &chunks).summary();
        let _ = observe(ResponsesStreamUsage::default(), &chunks);
        let _ = observe(GeminiStreamUsage::default(), &chunks).summary();
        let mut strip: Box<dyn StreamTap> = Box::new(ChatUsageStrip::default());
        for c in &chunks {
            let _ = strip.chunk(Bytes::copy_from_slice(c));
        }
        let _ = strip.end(Some("broken"));
    }

    #[test]
    fn whole_answer_bodies(body in jsonish()) {
        let _ = anthropic::usage_from_body(&body);
        let _ = openai::usage_from_body(&body);
        let _ = gemini::usage_from_body(&body);
        let _ = provider::gemini::retry_delay(&body);
        let _ = provider::gemini::key_refusal(&body);
        let _ = crate::oauth::endpoint::parse_grant(&body);
    }

    #[test]
    fn protobuf_durations(s in texty(&["s", ".", "0", "9", "-", "999999999999999999999"])) {
        if let Some(d) = provider::gemini::parse_duration(&s) {
            prop_assert!(d.as_secs() <= 315_576_000_000);
        }
    }

    #[test]
    fn pasted_sign_in_codes(s in texty(&["https://", "http://x/?", "code=", "&state=", "#", "?"])) {
        let _ = crate::oauth::login::PastedCode::parse(&s);
    }

    #[test]
    fn chat_bodies_to_translate(body in jsonish()) {
        let _ = crate::translate::chat::ChatRequest::parse(&body);
    }
}

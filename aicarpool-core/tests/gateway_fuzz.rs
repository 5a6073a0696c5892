//! Whatever a client sends, the gateway answers in the client's protocol
//! and never panics: generated methods, paths, queries, headers and bodies
//! go through [`Gateway::serve`] against a mock upstream that speaks the
//! real Anthropic wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/carpool.rs"]
mod carpool;
#[path = "common/harness.rs"]
mod harness;

use aicarpool_testkit::MockUpstream;
use bytes::Bytes;
use harness::{api_account, harness, Harness, UPSTREAM_KEY};
use http_body_util::BodyExt;
use proptest::prelude::*;

/// Generated requests; fixed so a run's executions are known.
const CASES: u32 = 1024;

const METHODS: &[&str] = &["POST", "GET", "PUT", "DELETE", "OPTIONS", "PATCH"];

const PATH_PIECES: &[&str] = &[
    "/v1/messages",
    "/api/v1/messages",
    "/api/ai-proxy/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/chat/completions",
    "/openai/v1/responses",
    "/v1/models",
    "/api/ai-proxy/v1beta/models/gemini-2.5-pro:streamGenerateContent",
    "/api/ai-proxy/v1beta/models/",
    ":generateContent",
    ":countTokens",
    "/",
    "..",
    "%2e%2e",
    "%00",
    "%",
    "//",
    "é",
    "?alt=sse",
    "?key=",
    "&key=aicp_x_y_z",
    "?",
    "&",
];

const HEADER_NAMES: &[&str] = &[
    "x-stainless-timeout",
    "x-claude-code-session-id",
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
    "content-type",
    "accept-encoding",
    "x-aicarpool-hop",
    "x-goog-api-key",
];

const HEADER_VALUES: &[&str] = &[
    "1e300",
    "18446744073709551616",
    "-1",
    "NaN",
    "inf",
    "0.000000001",
    "5",
    "application/json",
    "gzip, br",
    "2023-06-01",
    "a",
    " ",
    ";",
    ",",
];

const BODY_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"model\":",
    "\"claude-sonnet-4-5\"",
    "\"gpt-4o\"",
    "\"m\\r\\nX: 1\"",
    "\"max_tokens\":",
    "18446744073709551616",
    "-1",
    "1e999",
    "\"stream\":true",
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]",
    "\"metadata\":{\"user_id\":\"u_account__session_s\"}",
    "\"contents\":[]",
    "\"input\":\"hi\"",
    "\"generationConfig\":{\"maxOutputTokens\":1e9}",
    "null",
    "\\ud800",
];

fn text(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(pieces).prop_map(str::to_owned),
            1 => any::<String>(),
        ],
        0..max,
    )
    .prop_map(|p| p.concat())
}

#[derive(Debug, Clone)]
struct Generated {
    method: &'static str,
    path: String,
    with_key: bool,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        prop::sample::select(METHODS),
        text(PATH_PIECES, 5),
        any::<bool>(),
        prop::collection::vec(
            (prop::sample::select(HEADER_NAMES), text(HEADER_VALUES, 3)),
            0..6,
        ),
        prop_oneof![
            3 => text(BODY_PIECES, 14).prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..128),
        ],
    )
        .prop_map(|(method, path, with_key, headers, body)| Generated {
            method,
            path,
            with_key,
            headers,
            body,
        })
}

/// A path the URI parser takes: a leading slash, and every byte outside
/// the URI character set percent-encoded (hostile bytes still arrive, as a
/// client would have to send them).
fn uri_path(raw: &str) -> String {
    let mut out = String::from("/");
    for b in raw.trim_start_matches('/').bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/?&=:%@!$'()*+,;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A header value as it can travel on the wire: no control bytes.
fn header_value(raw: &str) -> http::HeaderValue {
    let bytes: Vec<u8> = raw.bytes().filter(|b| *b >= 0x20 && *b != 0x7f).collect();
    http::HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// The request, or `None` when `http` itself refuses the parts (what a
/// client cannot send reaches no handler).
fn request(h: &Harness, g: &Generated) -> Option<http::Request<http_body_util::Full<Bytes>>> {
    let mut b = http::Request::builder()
        .method(g.method)
        .uri(uri_path(&g.path));
    if g.with_key {
        b = b.header("x-api-key", &h.key);
    }
    for (name, value) in &g.headers {
        b = b.header(*name, header_value(value));
    }
    b.body(http_body_util::Full::new(Bytes::from(g.body.clone())))
        .ok()
}

#[test]
fn any_request_gets_an_answer_in_its_protocol() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (h, _mock) = rt.block_on(async {
        let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
        (harness(vec![api_account(&mock.url)]).await, mock)
    });
    let served = std::cell::Cell::new(0u32);
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(g in generated())| {
        let Some(req) = request(&h, &g) else { return Ok(()) };
        let (status, content_type, body) = rt.block_on(async {
            let resp = h.gateway.serve(req).await;
            let status = resp.status();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // The whole answer arrives: streams end, nothing hangs.
            let body = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                resp.into_body().collect(),
            )
            .await
            .expect("the answer ends")
            .map(|b| b.to_bytes())
            .unwrap_or_default();
            (status, ct, body)
        });
        served.set(served.get() + 1);
        prop_assert_ne!(status.as_u16(), 500, "{:?}", g);
        if status.as_u16() >= 400 && content_type.starts_with("application/json") {
            let v: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| TestCaseError::fail(format!("{e}: {g:?}")))?;
            prop_assert!(v.get("error").is_some(), "{}", v);
        }
    });
    let served = served.get();
    assert!(served > CASES * 9 / 10, "only {served} requests were built");
}

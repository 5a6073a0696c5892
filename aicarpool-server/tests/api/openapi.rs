//! The OpenAPI document at `/api/openapi.json` lists every route of the
//! router and every path of `docs/API.md` that the code serves; every
//! path the docs (API.md and the README) name is served.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::permissions::router_routes;
use crate::support;

/// `{userId}` and `{user_id}` are the same slot; so are `{month}.csv` and
/// `{file}`, as the router matches a parameter's whole segment (a `:verb`
/// after a parameter stays: the data plane routes it).
fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut out = String::new();
    let mut in_param = false;
    let mut just_closed = false;
    let mut in_extension = false;
    for c in path.chars() {
        in_extension = match c {
            '/' => false,
            '.' if just_closed => true,
            _ => in_extension,
        };
        just_closed = false;
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => {
                in_param = false;
                just_closed = true;
            }
            _ if !in_param && !in_extension => out.push(c),
            _ => {}
        }
    }
    out.trim_end_matches('/').to_owned()
}

/// Paths the server mounts outside the management router.
const OTHER_MOUNTS: [&str; 9] = [
    "/api/v1/messages",
    "/api/v1/v1/messages",
    "/v1/messages",
    "/api/v1/messages/count_tokens",
    "/api/v1/v1/messages/count_tokens",
    "/v1/messages/count_tokens",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// What the docs write in backticks that starts with `/` but is a prefix or
/// a fragment named in prose (`ANTHROPIC_BASE_URL=…/api`, "under `/v1`"),
/// not a path of its own.
const PROSE_FRAGMENTS: [&str; 7] = [
    "",
    "/api/ai-proxy",
    "/api/oauth",
    "/chat",
    "/v1",
    "/v1/chat/completions",
    "/v1/responses",
];

/// Paths the docs name that are not served yet.
const DOCUMENTED_NOT_SERVED: [&str; 0] = [];

/// Whether the data plane answers `path` (its catch-all under
/// `/api/ai-proxy` routes by itself): an unknown path is a 404 before any
/// key is looked at, a known one asks for a key or another method.
async fn data_plane_serves(s: &support::TestServer, path: &str) -> bool {
    let path = path.replace("{}", "gemini-2.5-flash");
    for method in [Method::GET, Method::POST] {
        let (st, _) = s
            .call(method, &path, None, Some(serde_json::json!({})))
            .await;
        if st != StatusCode::NOT_FOUND {
            return true;
        }
    }
    false
}

/// Every path written in backticks in API.md and the README.
fn documented_paths() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for doc in [
        include_str!("../../../docs/API.md"),
        include_str!("../../../README.md"),
    ] {
        paths_in(doc, &mut out);
    }
    out
}

fn paths_in(doc: &str, out: &mut BTreeSet<String>) {
    for (i, span) in doc.split('`').enumerate() {
        // Outside backticks, or a code block (shell, not paths).
        if i % 2 == 0 || span.contains('\n') {
            continue;
        }
        for word in span.split([' ', ',']) {
            if word.starts_with('/') && !word.contains('…') && word.len() > 1 {
                out.insert(normalize(word));
            }
        }
    }
}

async fn document() -> Value {
    let s = support::spawn().await;
    let (st, doc) = s.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    doc
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), normalize(path)));
        }
    }
    out
}

#[tokio::test]
async fn the_document_lists_every_route_of_the_router() {
    let doc = document().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "AiCarpool");
    let ops = operations(&doc);
    let missing: Vec<_> = router_routes()
        .into_iter()
        .map(|(m, p)| (m, normalize(&p)))
        .filter(|op| !ops.contains(op))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
}

#[tokio::test]
async fn the_document_lists_every_path_of_api_md_that_exists() {
    let doc = document().await;
    let in_doc: BTreeSet<String> = operations(&doc).into_iter().map(|(_, p)| p).collect();
    let in_code: BTreeSet<String> = router_routes()
        .into_iter()
        .map(|(_, p)| normalize(&p))
        .chain(OTHER_MOUNTS.iter().map(|p| normalize(p)))
        .collect();
    let documented = documented_paths();
    let served: Vec<&String> = documented.iter().filter(|p| in_code.contains(*p)).collect();
    assert!(served.len() >= 30, "API.md parse found only {served:?}");
    let missing: Vec<_> = served.iter().filter(|p| !in_doc.contains(**p)).collect();
    assert!(
        missing.is_empty(),
        "API.md paths served but not in the OpenAPI document: {missing:?}"
    );
    // A documented path nobody serves is a broken promise (`/metrics` was
    // one); only those listed as not served yet may be.
    let s = support::spawn().await;
    assert!(!data_plane_serves(&s, "/api/ai-proxy/v1/bogus").await);
    assert!(data_plane_serves(&s, "/api/ai-proxy/v1/chat/completions").await);
    let mut unserved = Vec::new();
    for p in &documented {
        let known = in_code.contains(p)
            || PROSE_FRAGMENTS.contains(&p.as_str())
            || DOCUMENTED_NOT_SERVED.contains(&p.as_str());
        let served = known || (p.starts_with("/api/ai-proxy/") && data_plane_serves(&s, p).await);
        if !served {
            unserved.push(p);
        }
    }
    assert!(
        unserved.is_empty(),
        "API.md documents paths the server does not serve: {unserved:?}"
    );
    let now_served: Vec<&&str> = DOCUMENTED_NOT_SERVED
        .iter()
        .filter(|p| in_code.contains(**p))
        .collect();
    assert!(
        now_served.is_empty(),
        "served now; drop them from DOCUMENTED_NOT_SERVED: {now_served:?}"
    );
    // The enterprise contract is served.
    for p in [
        "/api/enterprises/{}/accounts",
        "/api/enterprises/{}/departments",
        "/api/departments/{}",
        "/api/openapi.json",
    ] {
        assert!(
            served.iter().any(|s| *s == p),
            "{p} is documented and served"
        );
    }
}

#[test]
fn normalizing_paths() {
    assert_eq!(
        normalize("/api/groups/{id}/members/{userId}"),
        "/api/groups/{}/members/{}"
    );
    assert_eq!(normalize("/api/usage?scope=key"), "/api/usage");
    assert_eq!(
        normalize("/api/groups/{id}/statements/{month}.csv"),
        "/api/groups/{}/statements/{}"
    );
    assert_eq!(
        normalize("/v1beta/models/{model}:generateContent"),
        "/v1beta/models/{}:generateContent"
    );
}

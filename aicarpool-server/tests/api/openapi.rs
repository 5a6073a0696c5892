//! The OpenAPI document at `/api/openapi.json` lists every route of the
//! router and every path of `docs/API.md` that the code serves.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::permissions::router_routes;
use crate::support;

/// `{userId}` and `{user_id}` are the same slot.
fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
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

/// Every path written in backticks in API.md.
fn documented_paths() -> BTreeSet<String> {
    let doc = include_str!("../../../docs/API.md");
    let mut out = BTreeSet::new();
    for (i, span) in doc.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        for word in span.split([' ', ',']) {
            if word.starts_with('/') && !word.contains('…') && word.len() > 1 {
                out.insert(normalize(word));
            }
        }
    }
    out
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
}

//! `GET /metrics` through the server: what a scrape shows after real
//! requests, who may scrape, and the overhead header on every answer.

use aicarpool_testkit::{Behavior, MockUpstream};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{spawn, spawn_with, TestServer, ADMIN_TOKEN};

const UPSTREAM_KEY: &str = "sk-ant-metrics-account";

/// A group with one account on `upstream` and a member key limited to
/// one request a minute.
async fn one_key(s: &TestServer, upstream: &str) -> (String, String) {
    let email = format!(
        "m-{}@example.com",
        aicarpool_core::id::new_id().to_lowercase()
    );
    let (_, token) = s.register(&email).await;
    let (_, group) = s
        .post("/api/groups", &token, json!({"name": "metrics"}))
        .await;
    let group = group["id"].as_str().unwrap().to_owned();
    let (_, account) = s
        .post(
            &format!("/api/groups/{group}/accounts"),
            &token,
            json!({"name": "main", "platform": "claude_api", "baseUrl": upstream,
                   "credentials": {"apiKey": UPSTREAM_KEY}}),
        )
        .await;
    let account = account["id"].as_str().unwrap().to_owned();
    let (_, key) = s
        .post(
            &format!("/api/groups/{group}/keys"),
            &token,
            json!({"name": "k", "limits": {"requestsPerMinute": 1}}),
        )
        .await;
    (key["key"].as_str().unwrap().to_owned(), account)
}

async fn messages(s: &TestServer, key: &str, stream: bool) -> reqwest::Response {
    s.http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "stream": stream,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
}

async fn scrape(s: &TestServer, token: Option<&str>) -> (StatusCode, String) {
    let mut req = s.http.get(format!("{}/metrics", s.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The value of the first series whose line starts with `prefix`.
fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_scrape_counts_answers_refusals_tokens_and_account_state() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::AnswerWithHeaders(vec![(
        "anthropic-ratelimit-unified-5h-utilization".into(),
        "0.42".into(),
    )])]);
    let s = spawn().await;
    let (key, account) = one_key(&s, &mock.url).await;
    let (_, before) = scrape(&s, Some(ADMIN_TOKEN)).await;
    let ok_before = series(
        &before,
        r#"aicarpool_requests_total{protocol="anthropic",status="200",refusal="none"}"#,
    )
    .unwrap_or(0.0);
    let limited_before = series(
        &before,
        r#"aicarpool_requests_total{protocol="anthropic",status="429",refusal="rate-limit"}"#,
    )
    .unwrap_or(0.0);

    let answered = messages(&s, &key, true).await;
    assert_eq!(answered.status(), StatusCode::OK);
    let overhead: f64 = answered.headers()["x-aicarpool-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..1000.0).contains(&overhead), "{overhead}");
    assert!(answered.text().await.unwrap().contains("message_stop"));
    let refused = messages(&s, &key, false).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.headers().contains_key("x-aicarpool-overhead-ms"),
        "errors carry it too"
    );
    let bad_key = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", "aicp_nope")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(bad_key.headers().contains_key("x-aicarpool-overhead-ms"));

    // The stream settles a moment after its last byte.
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&s, Some(ADMIN_TOKEN)).await.1;
        if series(&text, r#"aicarpool_tokens_total{kind="output"}"#).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ok = series(
        &text,
        r#"aicarpool_requests_total{protocol="anthropic",status="200",refusal="none"}"#,
    )
    .unwrap();
    let limited = series(
        &text,
        r#"aicarpool_requests_total{protocol="anthropic",status="429",refusal="rate-limit"}"#,
    )
    .unwrap();
    assert!(ok >= ok_before + 1.0, "{text}");
    assert!(limited >= limited_before + 1.0, "{text}");
    assert!(series(&text, r#"aicarpool_tokens_total{kind="output"}"#).unwrap() >= 12.0);
    assert!(series(&text, "aicarpool_cost_usd_total").unwrap() > 0.0);
    assert!(
        text.contains("# TYPE aicarpool_overhead_seconds histogram"),
        "{text}"
    );
    assert!(text.contains(r#"aicarpool_upstream_duration_seconds_bucket{platform="claude_api""#));
    assert!(text.contains(r#"aicarpool_time_to_first_byte_seconds_count{protocol="anthropic"}"#));
    assert!(text.contains("aicarpool_inflight_requests"));
    assert!(text.contains("aicarpool_usage_writer_queue"));
    let state = format!(r#"aicarpool_account_state{{account="{account}",state="healthy"}} 1"#);
    assert!(text.contains(&state), "{text}");
    let window = format!(
        r#"aicarpool_subscription_window_utilization{{account="{account}",window="5h"}} 0.42"#
    );
    assert!(text.contains(&window), "{text}");
    assert!(!text.contains(&key), "no key in the metrics");
    assert!(
        !text.contains("claude-sonnet"),
        "no model typed by a user as a label"
    );
}

#[tokio::test]
async fn only_the_admin_token_may_scrape_the_main_listener() {
    let s = spawn().await;
    let (status, _) = scrape(&s, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, member_token) = s.register("not-admin@example.com").await;
    let (status, body) = scrape(&s, Some(&member_token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("aicarpool_"), "{body}");
    let resp = s
        .http
        .get(format!("{}/metrics", s.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
}

#[tokio::test]
async fn with_its_own_address_the_main_listener_has_no_metrics() {
    let mut config = aicarpool_server::ServeConfig::for_tests(ADMIN_TOKEN);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let s = spawn_with(config).await;
    let (status, _) = scrape(&s, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The listener of its own serves it without a token.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = aicarpool_server::metrics::own_listener(s.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

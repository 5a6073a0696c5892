//! `/readyz`: ready only when the database and, when configured, Redis
//! answer.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{spawn, spawn_with, TestServer, ADMIN_TOKEN};

async fn readyz(s: &TestServer) -> (StatusCode, Value) {
    let resp = s
        .http
        .get(format!("{}/readyz", s.url))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn ready_with_its_database() {
    let (status, body) = readyz(&spawn().await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn not_ready_while_its_redis_does_not_answer() {
    // Nothing listens there: the instance starts, and says it is not ready.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = aicarpool_server::ServeConfig::for_tests(ADMIN_TOKEN);
    config.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    let s = spawn_with(config).await;
    let (status, body) = readyz(&s).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "redis unreachable");
    assert!(
        !body.to_string().contains(&port.to_string()),
        "no address in the answer"
    );
}

#[tokio::test]
async fn ready_with_a_redis_that_answers() {
    let Ok(url) = std::env::var("AICARPOOL_TEST_REDIS_URL") else {
        eprintln!("skipped: AICARPOOL_TEST_REDIS_URL is not set");
        return;
    };
    let mut config = aicarpool_server::ServeConfig::for_tests(ADMIN_TOKEN);
    config.redis_url = Some(url);
    config.redis_prefix = Some(format!("aicp-readyz-{}:", aicarpool_core::id::new_id()));
    let (status, body) = readyz(&spawn_with(config).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

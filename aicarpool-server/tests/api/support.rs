//! An in-process server on port 0, and a small JSON client for it.

use std::time::Duration;

use aicarpool_server::{AppState, ServeConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running server and a client for it.
pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub http: reqwest::Client,
}

/// Starts a server with an in-memory database and [`ADMIN_TOKEN`].
pub async fn spawn() -> TestServer {
    spawn_with(ServeConfig::for_tests(ADMIN_TOKEN)).await
}

pub async fn spawn_with(config: ServeConfig) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_on(config, listener).await
}

/// Serves on a listener bound beforehand (so the configuration can name
/// its address, e.g. as the public URL).
pub async fn spawn_on(config: ServeConfig, listener: tokio::net::TcpListener) -> TestServer {
    let state = aicarpool_server::build_state(config).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serve_state = state.clone();
    tokio::spawn(async move {
        aicarpool_server::serve(serve_state, listener, std::future::pending())
            .await
            .unwrap();
    });
    TestServer {
        url,
        state,
        http: reqwest::Client::new(),
    }
}

impl TestServer {
    /// Calls the API as `token` (`None` = anonymous); returns status and JSON
    /// (Null for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers a user; returns (user id, session token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"email": email, "password": "correct horse battery", "name": email})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["user"]["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }
}

/// Waits until the report asked for by `query` counts `n` requests (the
/// usage writer flushes every 200 ms).
pub async fn report_with(s: &TestServer, token: &str, query: &str, n: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (status, body) = s.get(&format!("/api/usage?{query}"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["totals"]["requests"].as_u64() == Some(n) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("expected {n} requests, last report {last}");
}

//! Set-up the security tests share: a group with an owner and an admin,
//! accounts, bindings, member keys and a Messages call.

use aicarpool_server::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, TestServer, ADMIN_TOKEN};

/// A server whose outbound guard has its defaults: no loopback, no
/// private ranges (the test configuration allows loopback).
pub async fn guarded_server() -> TestServer {
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.upstream_allow = Default::default();
    support::spawn_with(config).await
}

/// A carpool group: its id, the owner's token and an admin's token.
pub struct Team {
    pub group: String,
    pub owner: String,
    pub admin: String,
}

pub async fn team(s: &TestServer) -> Team {
    let tag = aicarpool_core::id::new_id().to_lowercase();
    let (_, owner) = s.register(&format!("owner-{tag}@example.com")).await;
    let (_, admin) = s.register(&format!("admin-{tag}@example.com")).await;
    let (st, group) = s.post("/api/groups", &owner, json!({"name": "team"})).await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    let (st, inv) = s
        .post(
            &format!("/api/groups/{group}/invitations"),
            &owner,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let accept = format!("/api/invitations/{}/accept", inv["token"].as_str().unwrap());
    let (st, body) = s.call(Method::POST, &accept, Some(&admin), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    Team {
        group,
        owner,
        admin,
    }
}

impl Team {
    /// Adds an account to the group as `token`.
    pub async fn add_account(
        &self,
        s: &TestServer,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        s.post(&format!("/api/groups/{}/accounts", self.group), token, body)
            .await
    }

    /// Binds the accounts (dedicated) and makes a member key of the owner.
    pub async fn bind_and_key(&self, s: &TestServer, accounts: &[&str]) -> String {
        let entries: Vec<Value> = accounts.iter().map(|a| json!({"accountId": a})).collect();
        let (st, b) = s
            .put(
                &format!("/api/groups/{}/binding", self.group),
                &self.owner,
                json!({"mode": "dedicated", "accounts": entries}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let (st, key) = s
            .post(
                &format!("/api/groups/{}/keys", self.group),
                &self.owner,
                json!({"name": "laptop"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{key}");
        key["key"].as_str().unwrap().to_owned()
    }
}

/// A small non-streamed Messages call with a member key: status and body.
pub async fn messages(s: &TestServer, key: &str) -> (StatusCode, String) {
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

//! Claude subscription accounts through the server, against a mock token
//! endpoint: sign-in with paste-back (and everything that must refuse it),
//! pasted setup tokens, the refresh race on SQLite, a refused refresh in
//! the health API, and owner edits that cannot undo a refresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::account::Credentials;
use aicarpool_server::config::ClaudeOAuthArgs;
use aicarpool_server::ServeConfig;
use aicarpool_testkit::{MockOAuth, MockUpstream};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{spawn_with, TestServer, ADMIN_TOKEN};

const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

struct Env {
    s: TestServer,
    oauth: MockOAuth,
    upstream: MockUpstream,
    token: String,
    group: String,
}

async fn env(session_ttl_secs: Option<u64>) -> Env {
    let upstream = MockUpstream::start("sk-ant-api-unused").await.unwrap();
    let oauth = MockOAuth::start(CLIENT_ID).await.unwrap();
    oauth.link_upstream(&upstream);
    let config = ServeConfig {
        claude_oauth: ClaudeOAuthArgs {
            token_url: Some(oauth.token_url()),
            session_ttl_secs,
            ..Default::default()
        },
        ..ServeConfig::for_tests(ADMIN_TOKEN)
    };
    let s = spawn_with(config).await;
    let (_, token) = s
        .register(&format!(
            "owner-{}@example.com",
            aicarpool_core::id::new_id().to_lowercase()
        ))
        .await;
    let (st, group) = s.post("/api/groups", &token, json!({"name": "subs"})).await;
    assert_eq!(st, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();
    Env {
        s,
        oauth,
        upstream,
        token,
        group,
    }
}

fn query(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

impl Env {
    async fn start(&self) -> (String, String) {
        let (st, body) = self
            .s
            .post(
                "/api/oauth/claude/start",
                &self.token,
                json!({"groupId": self.group}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        (
            body["authUrl"].as_str().unwrap().to_owned(),
            body["sessionId"].as_str().unwrap().to_owned(),
        )
    }

    async fn finish(&self, session: &str, code: &str) -> (StatusCode, Value) {
        self.s
            .post(
                "/api/oauth/claude/finish",
                &self.token,
                json!({"sessionId": session, "code": code}),
            )
            .await
    }

    async fn credentials(&self, account_id: &str) -> Credentials {
        let state = &self.s.state;
        let sealed = state
            .store
            .sealed_credentials(account_id)
            .await
            .unwrap()
            .unwrap();
        state.sealer.open(account_id, &sealed).unwrap()
    }

    /// Points the account at the mock upstream, binds it, makes a key.
    async fn serve_through(&self, account_id: &str) -> String {
        // A new base URL drops the tokens unless they come along.
        let tokens = self.credentials(account_id).await;
        let (st, body) = self
            .s
            .patch(
                &format!("/api/accounts/{account_id}"),
                &self.token,
                json!({"baseUrl": self.upstream.url, "credentials": tokens}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let (st, body) = self
            .s
            .put(
                &format!("/api/groups/{}/binding", self.group),
                &self.token,
                json!({"mode": "dedicated", "accounts": [{"accountId": account_id}]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let (st, key) = self
            .s
            .post(
                &format!("/api/groups/{}/keys", self.group),
                &self.token,
                json!({"name": "laptop"}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{key}");
        key["key"].as_str().unwrap().to_owned()
    }

    async fn message(&self, key: &str) -> StatusCode {
        let resp = self
            .s
            .http
            .post(format!("{}/v1/messages", self.s.url))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "interleaved-thinking-2025-05-14")
            .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let _ = resp.bytes().await;
        status
    }

    /// A `claude_oauth` account created with a pasted pair.
    async fn pasted_pair(&self, expires_at: chrono::DateTime<chrono::Utc>) -> (String, String) {
        let (access, refresh) = self.oauth.mint();
        let (st, body) = self
            .s
            .post(
                &format!("/api/groups/{}/accounts", self.group),
                &self.token,
                json!({"name": "max", "platform": "claude_oauth",
                       "credentials": {"accessToken": access, "refreshToken": refresh,
                                       "expiresAt": expires_at}}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        (body["id"].as_str().unwrap().to_owned(), refresh)
    }
}

#[tokio::test]
async fn sign_in_with_paste_back_creates_a_working_account() {
    let e = env(None).await;
    let (auth_url, session) = e.start().await;
    let q = query(&auth_url);
    assert!(auth_url.starts_with("https://claude.ai/oauth/authorize?"));
    assert_eq!(q["code"], "true");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(
        q["redirect_uri"],
        "https://platform.claude.com/oauth/code/callback"
    );
    assert_eq!(
        q["scope"],
        "org:create_api_key user:profile user:inference user:sessions:claude_code"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32);
    assert!(
        !auth_url.contains(&session),
        "the session id is not in the URL"
    );

    let approval = e.oauth.approve(&auth_url);
    let (st, account) = e.finish(&session, &approval.pasted).await;
    assert_eq!(st, StatusCode::CREATED, "{account}");
    assert_eq!(account["platform"], "claude_oauth");
    assert_eq!(account["groupId"], e.group.as_str());
    assert_eq!(account["name"], "Claude owner@example.test");
    assert_eq!(account["oauth"]["account"]["email"], "owner@example.test");
    assert_eq!(account["oauth"]["organization"]["name"], "Mock Org");
    assert_eq!(account["oauth"]["refreshable"], true);
    assert_eq!(
        account["oauth"]["scopes"],
        json!([
            "org:create_api_key",
            "user:profile",
            "user:inference",
            "user:sessions:claude_code"
        ])
    );
    let text = account.to_string();
    assert!(
        !text.contains("sk-ant-oat01") && !text.contains("sk-ant-ort01"),
        "{text}"
    );

    // The exchange: a JSON body with the code, the verifier and the state.
    let requests = e.oauth.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.body["grant_type"], "authorization_code");
    assert_eq!(r.body["code"], approval.code.as_str());
    assert_eq!(r.body["state"], q["state"].as_str());
    assert_eq!(r.body["client_id"], CLIENT_ID);
    assert_eq!(r.body["redirect_uri"], q["redirect_uri"].as_str());
    let verifier = r.body["code_verifier"].as_str().unwrap();
    assert_eq!(
        B64URL.encode(Sha256::digest(verifier.as_bytes())),
        q["code_challenge"]
    );

    let id = account["id"].as_str().unwrap().to_owned();
    let creds = e.credentials(&id).await;
    let access = creds.access_token.clone().unwrap();
    assert!(creds.refresh_token.is_some());
    assert!(creds.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::hours(7));
    assert_eq!(
        creds
            .identity
            .as_ref()
            .unwrap()
            .organization_uuid
            .as_deref(),
        Some("org-mock-1")
    );

    let key = e.serve_through(&id).await;
    assert_eq!(e.message(&key).await, StatusCode::OK);
    let got = &e.upstream.received()[0];
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {access}").as_str()
    );
    assert_eq!(
        got.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14,oauth-2025-04-20"
    );
    // The audit log names the new account, not its tokens.
    let (st, audit) =
        e.s.get(&format!("/api/audit?groupId={}", e.group), &e.token)
            .await;
    assert_eq!(st, StatusCode::OK, "{audit}");
    assert!(!audit.to_string().contains("sk-ant-o"));
}

#[tokio::test]
async fn a_bare_code_or_the_callback_url_works_too() {
    let e = env(None).await;
    let (url, session) = e.start().await;
    let approval = e.oauth.approve(&url);
    let (st, body) = e.finish(&session, &format!("  {}\n", approval.code)).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    let (url, session) = e.start().await;
    let approval = e.oauth.approve(&url);
    let callback = format!(
        "https://platform.claude.com/oauth/code/callback?code={}&state={}",
        approval.code, approval.params["state"]
    );
    let (st, body) = e.finish(&session, &callback).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_wrong_state_is_refused_and_uses_the_session_up() {
    let e = env(None).await;
    let (url, session) = e.start().await;
    let approval = e.oauth.approve(&url);
    let (st, body) = e
        .finish(&session, &format!("{}#forged-state", approval.code))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_oauth_session");
    assert!(body["error"]["message"].as_str().unwrap().contains("state"));
    let (st, body) = e.finish(&session, &approval.pasted).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(e.oauth.requests().is_empty(), "nothing was exchanged");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let e = env(Some(1)).await;
    let (url, session) = e.start().await;
    let approval = e.oauth.approve(&url);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, body) = e.finish(&session, &approval.pasted).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    assert!(e.oauth.requests().is_empty());
}

#[tokio::test]
async fn a_session_is_used_once() {
    let e = env(None).await;
    let (url, session) = e.start().await;
    let approval = e.oauth.approve(&url);
    let (st, _) = e.finish(&session, &approval.pasted).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, body) = e.finish(&session, &approval.pasted).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_oauth_session");
    assert_eq!(e.oauth.requests().len(), 1);
}

#[tokio::test]
async fn a_code_is_used_once() {
    let e = env(None).await;
    let (url, first) = e.start().await;
    let (_, second) = e.start().await;
    let approval = e.oauth.approve(&url);
    let (st, _) = e.finish(&first, &approval.pasted).await;
    assert_eq!(st, StatusCode::CREATED);
    // The same code on another session: the token endpoint refuses it.
    let (st, body) = e.finish(&second, &approval.code).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "oauth_refused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{body}"
    );
    let (st, accounts) =
        e.s.get(&format!("/api/groups/{}/accounts", e.group), &e.token)
            .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        accounts.as_array().unwrap().len(),
        1,
        "no account for the refused code"
    );
}

#[tokio::test]
async fn only_the_starter_finishes_and_bad_bodies_are_refused() {
    let e = env(None).await;
    let (url, session) = e.start().await;
    let approval = e.oauth.approve(&url);
    let (_, other) = e.s.register("someone-else@example.com").await;
    let (st, _) =
        e.s.post(
            "/api/oauth/claude/finish",
            &other,
            json!({"sessionId": session, "code": approval.pasted}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Left alone: the owner still finishes it.
    let (st, body) = e.finish(&session, &approval.pasted).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    for body in [json!({}), json!({"groupId": e.group, "enterpriseId": "x"})] {
        let (st, b) = e.s.post("/api/oauth/claude/start", &e.token, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    }
    let (st, _) =
        e.s.post(
            "/api/oauth/claude/start",
            &e.token,
            json!({"groupId": e.group, "proxy": "ftp://x"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, b) = e.finish("whatever", "   ").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn a_setup_token_can_be_pasted_as_an_account() {
    let e = env(None).await;
    let path = format!("/api/groups/{}/accounts", e.group);
    let (st, body) =
        e.s.post(
            &path,
            &e.token,
            json!({"name": "max", "platform": "claude_oauth"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, body) = e
        .s
        .post(
            &path,
            &e.token,
            json!({"name": "max", "platform": "claude_oauth", "credentials": {"apiKey": "sk-ant-x"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    let (setup_token, _) = e.oauth.mint();
    let (st, account) =
        e.s.post(
            &path,
            &e.token,
            json!({"name": "max", "platform": "claude_oauth",
                   "credentials": {"accessToken": format!(" {setup_token} ")}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{account}");
    assert!(!account.to_string().contains(&setup_token));
    let id = account["id"].as_str().unwrap().to_owned();
    let creds = e.credentials(&id).await;
    assert_eq!(creds.access_token.as_deref(), Some(setup_token.as_str()));
    assert_eq!(creds.scopes, ["user:inference"]);
    assert!(creds.refresh_token.is_none());

    let key = e.serve_through(&id).await;
    assert_eq!(e.message(&key).await, StatusCode::OK);
    let got = &e.upstream.received()[0];
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {setup_token}").as_str()
    );
    assert!(got.headers["anthropic-beta"]
        .to_str()
        .unwrap()
        .contains("oauth-2025-04-20"));
    assert_eq!(e.oauth.refresh_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_at_expiry_refresh_once_on_sqlite() {
    let e = Arc::new(env(None).await);
    let (id, old_refresh) = e
        .pasted_pair(chrono::Utc::now() - chrono::Duration::seconds(1))
        .await;
    let key = e.serve_through(&id).await;
    e.oauth.set_delay(Duration::from_millis(300));
    let requests = 50;
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let (e, key) = (e.clone(), key.clone());
            tokio::spawn(async move { e.message(&key).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let refreshes = e.oauth.refresh_calls();
    println!("refresh race (server, SQLite): {requests} concurrent requests at token expiry -> {refreshes} refresh call(s)");
    assert_eq!(refreshes, 1);
    let creds = e.credentials(&id).await;
    assert_ne!(creds.refresh_token.as_deref(), Some(old_refresh.as_str()));
    let (st, health) =
        e.s.get(&format!("/api/accounts/{id}/health"), &e.token)
            .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(health["state"], "healthy", "{health}");
}

#[tokio::test]
async fn a_refused_refresh_shows_in_health_and_keeps_the_tokens() {
    let e = env(None).await;
    let (id, _) = e
        .pasted_pair(chrono::Utc::now() - chrono::Duration::seconds(1))
        .await;
    let key = e.serve_through(&id).await;
    let before = e.credentials(&id).await;
    e.oauth.fail_refresh(Some((400, "invalid_grant")));
    assert!(e.message(&key).await.is_server_error());
    assert_eq!(e.credentials(&id).await, before, "the old tokens stay");
    let (st, health) =
        e.s.get(&format!("/api/accounts/{id}/health"), &e.token)
            .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(health["state"], "needs_attention", "{health}");
    assert_eq!(health["reason"], "credentials_rejected");
    let message = health["lastError"]["message"].as_str().unwrap();
    assert!(message.contains("invalid_grant"), "{health}");
    assert!(!health.to_string().contains("sk-ant-o"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_cannot_undo_a_refresh() {
    let e = env(None).await;
    let (id, _) = e
        .pasted_pair(chrono::Utc::now() + chrono::Duration::hours(1))
        .await;
    let state = e.s.state.clone();
    let store = state.store.clone();
    let now = chrono::Utc::now();
    // Play the refresher: hold the lease, as a refresh does.
    assert!(store
        .try_lock_credentials(&id, "refresher", now, now + chrono::Duration::seconds(30))
        .await
        .unwrap());
    let url = format!("{}/api/accounts/{id}", e.s.url);
    let token = e.token.clone();
    let edit = tokio::spawn(async move {
        reqwest::Client::new()
            .patch(url)
            .bearer_auth(token)
            .json(&json!({"name": "renamed"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!edit.is_finished(), "the edit waits for the lease");
    // The refresh completes while the edit waits: the new pair is written.
    let old = store.sealed_credentials(&id).await.unwrap().unwrap();
    let fresh = Credentials {
        access_token: Some("sk-ant-oat01-refreshed".into()),
        refresh_token: Some("sk-ant-ort01-refreshed".into()),
        ..Default::default()
    };
    let sealed = state.sealer.seal(&id, &fresh).unwrap();
    assert!(store
        .update_credentials_if(&id, &old, &sealed, chrono::Utc::now())
        .await
        .unwrap());
    store.unlock_credentials(&id, "refresher").await.unwrap();
    assert_eq!(edit.await.unwrap(), StatusCode::OK);
    let account = store.account(&id).await.unwrap().unwrap();
    assert_eq!(account.name, "renamed");
    assert_eq!(
        account.credentials, sealed,
        "the edit kept the refreshed pair"
    );
}

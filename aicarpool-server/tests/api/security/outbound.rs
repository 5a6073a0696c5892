//! The outbound guard: no upstream call reaches an address it denies.
//!
//! Replays the SSRF probes: account URLs and proxies aimed inside the
//! network in every spelling, names that resolve inside, accounts stored
//! before the guard existed, and redirects to another origin.

use aicarpool_core::account::{Account, AccountOwner, Credentials, Platform, Preset};
use aicarpool_testkit::MockUpstream;
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::setup::{guarded_server, messages, team};

const KEY: &str = "sk-ant-guarded-0123456789";

fn custom(base_url: &str) -> Value {
    json!({"name": "relay", "platform": "anthropic_compatible", "preset": "custom",
           "baseUrl": base_url, "credentials": {"apiKey": KEY}})
}

#[tokio::test]
async fn internal_destinations_are_refused_when_an_account_is_made() {
    let s = guarded_server().await;
    let t = team(&s).await;
    for url in [
        "http://127.0.0.1:47109",
        "http://[::1]:8080",
        "http://localhost",
        "http://0.0.0.0",
        "http://2130706433",
        "http://127.1",
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal",
        "http://10.0.0.1",
        "http://[::ffff:127.0.0.1]",
    ] {
        let (st, body) = t.add_account(&s, &t.owner, custom(url)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{url}: {body}");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("AICARPOOL_UPSTREAM_ALLOW"), "{url}: {msg}");
        let openai = json!({"name": "o", "platform": "openai_compatible", "baseUrl": url,
                            "credentials": {"apiKey": KEY}});
        let (st, body) = t.add_account(&s, &t.owner, openai).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
    for proxy in [
        "socks5://169.254.10.10:1080",
        "socks5h://u:p@127.0.0.1:1080",
        "http://192.168.1.1:3128",
    ] {
        let body = json!({"name": "k", "platform": "claude_api", "proxy": proxy,
                          "credentials": {"apiKey": KEY}});
        let (st, body) = t.add_account(&s, &t.owner, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{proxy}: {body}");
        assert!(
            body.to_string().contains("AICARPOOL_UPSTREAM_ALLOW"),
            "{body}"
        );
        assert!(!body.to_string().contains(":p@"), "{body}");
    }
    let (st, body) = s
        .post(
            "/api/oauth/claude/start",
            &t.owner,
            json!({"groupId": t.group, "proxy": "http://10.1.1.1:3128"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    // A public destination is still fine.
    let (st, body) = t
        .add_account(&s, &t.owner, custom("https://relay.example.com/anthropic"))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// This machine's host name, when it resolves to loopback only: a name
/// the creation check cannot judge, which resolves inside, as a rebound
/// name would.
fn loopback_host_name() -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    let addrs: Vec<_> = (name.as_str(), 80).to_socket_addrs().ok()?.collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

#[tokio::test]
async fn a_name_that_resolves_inside_is_refused_when_connecting() {
    let Some(host) = loopback_host_name() else {
        eprintln!("skipped: this machine's host name does not resolve to loopback only");
        return;
    };
    let mock = MockUpstream::start(KEY).await.unwrap();
    let s = guarded_server().await;
    let t = team(&s).await;
    let url = format!("http://{host}:{}", mock.addr.port());
    let (st, acc) = t.add_account(&s, &t.owner, custom(&url)).await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    let id = acc["id"].as_str().unwrap();
    let (st, report) = s
        .post(&format!("/api/accounts/{id}/test"), &t.owner, json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["errorClass"], "blocked", "{report}");
    let key = t.bind_and_key(&s, &[id]).await;
    let (st, body) = messages(&s, &key).await;
    assert!(st.is_server_error(), "{st} {body}");
    assert_eq!(mock.hits(), 0, "the mock behind the name was reached");
}

#[tokio::test]
async fn an_account_stored_before_the_guard_is_refused_when_sending() {
    let mock = MockUpstream::start(KEY).await.unwrap();
    let s = guarded_server().await;
    let t = team(&s).await;
    // As a row written by an older version: straight into the store.
    let now = chrono::Utc::now();
    let id = aicarpool_core::id::new_id();
    let creds = Credentials {
        api_key: Some(KEY.into()),
        ..Default::default()
    };
    let account = Account {
        id: id.clone(),
        name: "old".into(),
        platform: Platform::AnthropicCompatible,
        preset: Some(Preset::Custom),
        base_url: Some(mock.url.clone()),
        owner: AccountOwner::Group(t.group.clone()),
        models: vec![],
        model_map: Default::default(),
        serves: Vec::new(),
        priority: 50,
        weight: 1,
        max_concurrency: None,
        proxy: None,
        enabled: true,
        credentials: s.state.sealer.seal(&id, &creds).unwrap(),
        created_at: now,
        updated_at: now,
    };
    s.state.store.create_account(&account).await.unwrap();
    let key = t.bind_and_key(&s, &[&id]).await;
    let (st, body) = messages(&s, &key).await;
    assert!(st.is_server_error(), "{st} {body}");
    assert!(!body.contains(&mock.url), "{body}");
    let (_, report) = s
        .post(&format!("/api/accounts/{id}/test"), &t.owner, json!({}))
        .await;
    assert_eq!(report["errorClass"], "blocked", "{report}");
    assert_eq!(mock.hits(), 0);
}

/// An upstream that redirects every call to `to`.
async fn redirector(to: String) -> String {
    let app = axum::Router::new().fallback(move || {
        let to = to.clone();
        async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("{to}/v1/messages"))],
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let elsewhere = MockUpstream::start(KEY).await.unwrap();
    let s = crate::support::spawn().await; // loopback allowed
    let t = team(&s).await;
    let redirecting = redirector(elsewhere.url.clone()).await;
    let (st, acc) = t.add_account(&s, &t.owner, custom(&redirecting)).await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    let id = acc["id"].as_str().unwrap();
    let key = t.bind_and_key(&s, &[id]).await;
    let (st, body) = messages(&s, &key).await;
    assert!(!st.is_success() && !st.is_redirection(), "{st} {body}");
    let (_, report) = s
        .post(&format!("/api/accounts/{id}/test"), &t.owner, json!({}))
        .await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(elsewhere.hits(), 0, "the key followed the redirect");
}

#[tokio::test]
async fn the_connection_test_reads_out_no_internal_service() {
    // An "internal service" that answers with a secret in a body that is
    // not a provider error, on an address the operator allowed.
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::FORBIDDEN,
            r#"{"error":"INTERNAL-SECRET-XYZ from /secret403"}"#,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/secret403", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let s = crate::support::spawn().await;
    let t = team(&s).await;
    let (_, acc) = t.add_account(&s, &t.owner, custom(&url)).await;
    let id = acc["id"].as_str().unwrap();
    let (_, report) = s
        .post(&format!("/api/accounts/{id}/test"), &t.owner, json!({}))
        .await;
    assert_eq!(report["status"], 403, "{report}");
    assert_eq!(report["errorClass"], "credentials_rejected", "{report}");
    assert!(!report.to_string().contains("INTERNAL-SECRET"), "{report}");

    // Closed and open ports read alike: no connect error text.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, acc) = t
        .add_account(&s, &t.owner, custom(&format!("http://127.0.0.1:{closed}")))
        .await;
    let id = acc["id"].as_str().unwrap();
    let (_, report) = s
        .post(&format!("/api/accounts/{id}/test"), &t.owner, json!({}))
        .await;
    assert_eq!(report["errorClass"], "unreachable", "{report}");
    assert_eq!(
        report["error"], "the upstream could not be reached",
        "{report}"
    );
}

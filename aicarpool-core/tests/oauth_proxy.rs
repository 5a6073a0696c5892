//! Outbound proxies per account: a loopback HTTP proxy and a loopback
//! SOCKS5 proxy (both asking for credentials) see the account's API calls
//! and its token refresh; a wrong proxy password is a clean failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oauth_support;

use aicarpool_core::account::Platform;
use aicarpool_testkit::{HttpProxy, Socks5Proxy};
use oauth_support::{body_text, harness, Setup};

fn expired_through(proxy: &str) -> Setup {
    Setup {
        expires_in: chrono::Duration::seconds(-1),
        proxy: Some(proxy.to_owned()),
        ..Setup::default()
    }
}

#[tokio::test]
async fn an_http_proxy_carries_messages_and_the_refresh() {
    let proxy = HttpProxy::start(Some(("carpool", "proxy-pw")))
        .await
        .unwrap();
    let h = harness(expired_through(&proxy.url)).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 200);
    let _ = body_text(resp.into_body()).await;
    let seen = proxy.seen();
    assert!(seen.iter().all(|r| r.authorized), "{seen:?}");
    let uris: Vec<&str> = seen.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            h.oauth.token_url(),
            format!("{}/v1/messages?beta=true", h.upstream.url)
        ],
        "the refresh first, then the call, both through the proxy"
    );
    assert_eq!(h.oauth.refresh_calls(), 1);
    let (_, stored) = h.stored().await;
    assert_eq!(h.bearers(), [stored.access_token.unwrap()]);
}

#[tokio::test]
async fn a_socks5_proxy_carries_messages_and_the_refresh() {
    let proxy = Socks5Proxy::start(Some(("carpool", "s0cks-pw")))
        .await
        .unwrap();
    let h = harness(expired_through(&proxy.url)).await;
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
    let _ = body_text(resp.into_body()).await;
    let conns = proxy.connections();
    assert!(
        conns.iter().all(|c| c.user.as_deref() == Some("carpool")),
        "{conns:?}"
    );
    let token = conns
        .iter()
        .find(|c| c.target == h.oauth.addr.to_string())
        .expect("the refresh went through the proxy");
    assert!(
        token.first_line.starts_with("POST /v1/oauth/token "),
        "{token:?}"
    );
    let api = conns
        .iter()
        .find(|c| c.target == h.upstream.addr.to_string())
        .expect("the API call went through the proxy");
    assert!(api.first_line.starts_with("POST /v1/messages "), "{api:?}");
    assert_eq!(h.oauth.refresh_calls(), 1);
    assert_eq!(h.upstream.hits(), 1);
}

#[tokio::test]
async fn api_key_accounts_use_their_proxy_too() {
    let proxy = Socks5Proxy::start(None).await.unwrap();
    let h = harness(Setup {
        platform: Platform::ClaudeApi,
        proxy: Some(proxy.url.clone()),
        ..Setup::default()
    })
    .await;
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
    let conns = proxy.connections();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].target, h.upstream.addr.to_string());
    assert_eq!(
        h.upstream.received()[0].headers["x-api-key"],
        h.access.as_str()
    );
}

#[tokio::test]
async fn a_wrong_proxy_password_fails_cleanly_without_leaking_it() {
    let proxy = Socks5Proxy::start(Some(("carpool", "right")))
        .await
        .unwrap();
    let wrong = proxy.url.replace(":right@", ":wrong-secret@");
    let h = harness(Setup {
        proxy: Some(wrong),
        ..Setup::default()
    })
    .await;
    let resp = h.gateway.handle(h.small_request()).await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let text = body_text(resp.into_body()).await;
    assert!(!text.contains("wrong-secret"), "{text}");
    assert!(proxy.connections().is_empty());
    assert!(proxy.refused() >= 1);
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn an_http_proxy_refusing_the_account_is_not_passed_to_the_member() {
    let proxy = HttpProxy::start(Some(("carpool", "right"))).await.unwrap();
    let wrong = proxy.url.replace(":right@", ":wrong-secret@");
    let h = harness(Setup {
        proxy: Some(wrong),
        ..Setup::default()
    })
    .await;
    let resp = h.gateway.handle(h.small_request()).await;
    assert_ne!(resp.status(), 407, "a proxy's 407 is the account's problem");
    assert!(!resp.status().is_success());
    let text = body_text(resp.into_body()).await;
    assert!(!text.contains("wrong-secret"), "{text}");
    assert!(proxy.seen().iter().all(|r| !r.authorized));
    assert_eq!(h.upstream.hits(), 0);
    let health = h.gateway.account_health(&h.account.id);
    assert_eq!(health.state, "needs_attention");
}

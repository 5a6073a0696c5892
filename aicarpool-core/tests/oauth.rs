//! Claude OAuth accounts through the gateway, against a mock upstream and a
//! mock token endpoint: the bearer and beta flag, refresh ahead of expiry
//! and after a 401, single flight under load (in one instance and across
//! two), failures that keep the tokens, and subscription windows in health.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oauth_support;

use std::sync::Arc;
use std::time::Duration;

use aicarpool_core::store::DynStore;
use aicarpool_testkit::{fixtures, Behavior};
use oauth_support::{body_text, gateway_for, harness, Setup};

fn expired() -> Setup {
    Setup {
        expires_in: chrono::Duration::seconds(-1),
        ..Setup::default()
    }
}

#[tokio::test]
async fn requests_carry_the_bearer_and_the_oauth_beta_once() {
    let h = harness(Setup::default()).await;
    let resp = h.gateway.handle(h.claude_code_request()).await;
    assert_eq!(resp.status(), 200);
    let text = body_text(resp.into_body()).await;
    assert!(text.contains("message_stop"), "{text}");
    let got = &h.upstream.received()[0];
    assert_eq!(got.path, "/v1/messages?beta=true");
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {}", h.access).as_str()
    );
    assert!(got.headers.get("x-api-key").is_none());
    let betas: Vec<&str> = got
        .headers
        .get_all("anthropic-beta")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(str::trim)
        .collect();
    assert_eq!(
        betas.iter().filter(|b| **b == "oauth-2025-04-20").count(),
        1,
        "{betas:?}"
    );
    // Every flag the client sent is still there, in its order.
    let captured = fixtures::claude_code_authtoken();
    let (_, sent) = captured
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("anthropic-beta"))
        .unwrap();
    let sent: Vec<&str> = sent.split(',').map(str::trim).collect();
    let kept: Vec<&str> = betas.iter().copied().filter(|b| sent.contains(b)).collect();
    let mut unique = sent.clone();
    unique.dedup();
    assert_eq!(
        kept,
        unique
            .iter()
            .copied()
            .filter(|b| !b.is_empty())
            .collect::<Vec<_>>()
    );
    assert_eq!(h.oauth.refresh_calls(), 0, "a fresh token is not refreshed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_at_expiry_make_one_refresh() {
    let h = Arc::new(harness(expired()).await);
    // A slow token endpoint keeps the refresh in flight while all arrive.
    h.oauth.set_delay(Duration::from_millis(300));
    let requests = 50;
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                let resp = h.gateway.handle(h.small_request()).await;
                let status = resp.status();
                let _ = body_text(resp.into_body()).await;
                status
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let refreshes = h.oauth.refresh_calls();
    println!("refresh race (one instance): {requests} concurrent requests at token expiry -> {refreshes} refresh call(s)");
    assert_eq!(refreshes, 1);
    assert_eq!(h.gateway.claude_oauth().tokens().refresh_calls(), 1);
    let (_, stored) = h.stored().await;
    let new_access = stored.access_token.clone().unwrap();
    assert_ne!(new_access, h.access);
    assert_ne!(stored.refresh_token.as_deref(), Some(h.refresh.as_str()));
    assert!(stored.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::hours(7));
    let bearers = h.bearers();
    assert_eq!(bearers.len(), requests);
    assert!(
        bearers.iter().all(|b| *b == new_access),
        "nobody sent the expired token"
    );
    assert_eq!(h.gateway.account_health(&h.account.id).state, "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_a_store_refresh_once() {
    let h = harness(expired()).await;
    h.oauth.set_delay(Duration::from_millis(300));
    let store: DynStore = h.store.clone();
    let second = gateway_for(store, h.sealer.clone(), &h.oauth);
    let per_instance = 20;
    let mut tasks = Vec::new();
    for gateway in [h.gateway.clone(), second.clone()] {
        for _ in 0..per_instance {
            let gateway = gateway.clone();
            let req = h.small_request();
            tasks.push(tokio::spawn(async move {
                let resp = gateway.handle(req).await;
                let status = resp.status();
                let _ = body_text(resp.into_body()).await;
                status
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let refreshes = h.oauth.refresh_calls();
    println!(
        "refresh race (two instances, one store): {} concurrent requests -> {refreshes} refresh call(s)",
        2 * per_instance
    );
    assert_eq!(refreshes, 1);
    let (_, stored) = h.stored().await;
    let new_access = stored.access_token.unwrap();
    assert!(h.bearers().iter().all(|b| *b == new_access));
}

#[tokio::test]
async fn a_refused_refresh_keeps_the_tokens_and_marks_the_account() {
    let h = harness(expired()).await;
    let (sealed_before, _) = h.stored().await;
    h.oauth.fail_refresh(Some((400, "invalid_grant")));
    let resp = h.gateway.handle(h.small_request()).await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
    let text = body_text(resp.into_body()).await;
    assert!(!text.contains(&h.refresh) && !text.contains(&h.access));
    let (sealed_after, _) = h.stored().await;
    assert_eq!(
        sealed_before, sealed_after,
        "nothing written over good tokens"
    );
    assert_eq!(h.upstream.hits(), 0, "the expired token was not sent");

    let health = h.gateway.account_health(&h.account.id);
    assert_eq!(health.state, "needs_attention");
    let last = health.last_error.unwrap();
    assert!(last.message.contains("invalid_grant"), "{}", last.message);
    // Not routed while it needs attention.
    let resp = h.gateway.handle(h.small_request()).await;
    assert!(!resp.status().is_success());
    assert_eq!(h.oauth.refresh_calls(), 1);

    // The refresh token was never spent: once the endpoint takes it again,
    // a test call refreshes, and the account is healthy again.
    h.oauth.fail_refresh(None);
    let report = h.gateway.test_account(&h.account).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(h.gateway.account_health(&h.account.id).state, "healthy");
    let (_, stored) = h.stored().await;
    assert_ne!(stored.access_token.as_deref(), Some(h.access.as_str()));
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_outage_ahead_of_expiry_keeps_serving_the_valid_token() {
    let h = harness(Setup {
        expires_in: chrono::Duration::minutes(2),
        ..Setup::default()
    })
    .await;
    let (sealed_before, _) = h.stored().await;
    h.oauth.fail_refresh(Some((503, "temporarily_unavailable")));
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(h.bearers(), std::slice::from_ref(&h.access));
    assert_eq!(h.stored().await.0, sealed_before);
    assert_eq!(h.gateway.account_health(&h.account.id).state, "healthy");
    // Once the endpoint is back, the next request refreshes ahead of time.
    h.oauth.fail_refresh(None);
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
    let (_, stored) = h.stored().await;
    assert_eq!(h.bearers()[1], stored.access_token.unwrap());
}

#[tokio::test]
async fn an_upstream_401_refreshes_and_retries_once() {
    let h = harness(Setup {
        accepted: false,
        ..Setup::default()
    })
    .await;
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
    let bearers = h.bearers();
    assert_eq!(bearers.len(), 2, "the refused attempt and one retry");
    assert_eq!(bearers[0], h.access);
    let (_, stored) = h.stored().await;
    assert_eq!(bearers[1], stored.access_token.unwrap());
    assert_eq!(h.oauth.refresh_calls(), 1);
    assert_eq!(h.gateway.account_health(&h.account.id).state, "healthy");
}

#[tokio::test]
async fn a_refused_setup_token_needs_attention() {
    let h = harness(Setup {
        accepted: false,
        refreshable: false,
        ..Setup::default()
    })
    .await;
    let resp = h.gateway.handle(h.small_request()).await;
    assert!(!resp.status().is_success());
    assert_eq!(h.upstream.hits(), 1, "no retry without a new token");
    assert_eq!(h.oauth.refresh_calls(), 0);
    let health = h.gateway.account_health(&h.account.id);
    assert_eq!(health.state, "needs_attention");
    assert!(
        health
            .last_error
            .unwrap()
            .message
            .contains("no refresh token"),
        "the reason is shown"
    );
}

#[tokio::test]
async fn subscription_windows_reach_account_health() {
    let h = harness(Setup::default()).await;
    let reset = chrono::Utc::now().timestamp() + 3600;
    let week = reset + 86_400;
    h.upstream.push([Behavior::AnswerWithHeaders(vec![
        (
            "anthropic-ratelimit-unified-status".into(),
            "allowed".into(),
        ),
        (
            "anthropic-ratelimit-unified-reset".into(),
            reset.to_string(),
        ),
        (
            "anthropic-ratelimit-unified-5h-status".into(),
            "allowed_warning".into(),
        ),
        (
            "anthropic-ratelimit-unified-5h-reset".into(),
            reset.to_string(),
        ),
        (
            "anthropic-ratelimit-unified-5h-utilization".into(),
            "0.91".into(),
        ),
        (
            "anthropic-ratelimit-unified-7d-status".into(),
            "allowed".into(),
        ),
        (
            "anthropic-ratelimit-unified-7d-reset".into(),
            week.to_string(),
        ),
        (
            "anthropic-ratelimit-unified-7d-utilization".into(),
            "0.4".into(),
        ),
    ])]);
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 200);
    let _ = body_text(resp.into_body()).await;
    let health = serde_json::to_value(h.gateway.account_health(&h.account.id)).unwrap();
    let w = &health["unifiedWindow"];
    assert_eq!(w["status"], "allowed", "{health}");
    assert_eq!(w["fiveHour"]["status"], "allowed_warning");
    assert_eq!(w["fiveHour"]["utilization"], 0.91);
    assert_eq!(w["sevenDay"]["utilization"], 0.4);
    let reset_at = chrono::DateTime::from_timestamp(reset, 0).unwrap();
    assert_eq!(w["resetAt"], serde_json::json!(reset_at));
    assert!(w["seenAt"].is_string());

    // A 429 that says `rejected` cools the account until the window resets.
    h.upstream.push([Behavior::RateLimited {
        retry_after: None,
        unified_reset: Some(reset),
    }]);
    let resp = h.gateway.handle(h.small_request()).await;
    assert_eq!(resp.status(), 429);
    let health = h.gateway.account_health(&h.account.id);
    assert_eq!(health.state, "cooling");
    assert_eq!(health.cooling_until.unwrap().timestamp(), reset);
}

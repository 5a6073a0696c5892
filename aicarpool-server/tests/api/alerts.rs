//! Alerts end to end: rules made through the API, conditions met by real
//! usage, router state and keys, and deliveries to a webhook receiver on
//! loopback that checks the signature, fails on purpose and counts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicarpool_core::usage::{Usage, UsageRecord};
use aicarpool_server::alerts::{signature, Alerts, SIGNATURE_HEADER};
use aicarpool_testkit::{Behavior, MockUpstream};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{spawn, TestServer, ADMIN_TOKEN};

/// What the receiver got: each delivery's signature header and body.
#[derive(Default)]
struct Received {
    deliveries: Vec<(String, Vec<u8>)>,
    /// Answers 500 to this many deliveries first.
    fail_first: usize,
}

/// A webhook receiver on loopback.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received {
        fail_first,
        ..Received::default()
    }));
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let mut r = state.lock().unwrap();
                let sig = headers
                    .get(SIGNATURE_HEADER)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                r.deliveries.push((sig, body.to_vec()));
                if r.deliveries.len() <= r.fail_first {
                    AxumStatus::INTERNAL_SERVER_ERROR
                } else {
                    AxumStatus::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn group(s: &TestServer, limits: Value) -> (String, String) {
    let (_, owner) = s
        .register(&format!(
            "alert-owner-{}@example.com",
            aicarpool_core::id::new_id().to_lowercase()
        ))
        .await;
    let (st, g) = s
        .post("/api/groups", &owner, json!({"name": "alerting"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let g = g["id"].as_str().unwrap().to_owned();
    let (st, p) = s
        .patch(
            &format!("/api/groups/{g}"),
            &owner,
            json!({"limits": limits}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    (owner, g)
}

fn alerts(s: &TestServer) -> Alerts {
    Alerts::new(s.state.clone())
        .unwrap()
        .with_backoff(Duration::from_millis(10))
}

#[tokio::test]
async fn a_budget_alert_is_signed_retried_told_once_and_audited() {
    let s = spawn().await;
    let (hook, got) = receiver(2).await;
    let (owner, g) = group(&s, json!({"costUsd": {"monthly": 1.0}})).await;
    let (st, rule) = s
        .post(
            &format!("/api/groups/{g}/alerts"),
            &owner,
            json!({"kind": "budget", "target": hook, "threshold": 0.5}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{rule}");
    let secret = rule["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    // Below the threshold: nothing.
    assert!(alerts(&s).run_once(Utc::now()).await.is_empty());
    let (_, me) = s.get("/api/me", &owner).await;
    let usage = Usage {
        input_tokens: 1000,
        ..Usage::default()
    };
    let user = me["user"]["id"].as_str().unwrap();
    let record = UsageRecord {
        latency_ms: 1,
        attempts: 1,
        ..UsageRecord::new("k", user, &g, "claude-sonnet-4-5", usage, 600_000)
    };
    s.state.store.insert_usage(&[record]).await.unwrap();

    let done = alerts(&s).run_once(Utc::now()).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].attempts, 3, "two failures, then delivered");
    assert_eq!(done[0].error, None);
    let deliveries = got.lock().unwrap().deliveries.clone();
    assert_eq!(deliveries.len(), 3);
    let (sig, body) = deliveries.last().unwrap();
    assert_eq!(
        sig,
        &signature(secret.as_bytes(), body),
        "signed with the rule's secret"
    );
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["kind"], "budget");
    assert_eq!(payload["owner"], json!({"type": "group", "id": g}));
    assert!(
        payload["summary"].as_str().unwrap().contains("60%"),
        "{payload}"
    );
    assert_eq!(payload["detail"]["field"], "costUsd.monthly");

    // The same crossing is not told again, on any run.
    assert!(alerts(&s).run_once(Utc::now()).await.is_empty());
    assert_eq!(got.lock().unwrap().deliveries.len(), 3);

    let (_, audit) = s.get(&format!("/api/audit?groupId={g}"), &owner).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"alert.delivered"), "{actions:?}");
    assert!(actions.contains(&"alert.created"), "{actions:?}");
    assert!(
        !audit.to_string().contains(&secret),
        "the secret is never logged"
    );
}

#[tokio::test]
async fn a_delivery_given_up_is_audited_as_failed() {
    let s = spawn().await;
    let (hook, got) = receiver(100).await;
    let (owner, g) = group(&s, json!({})).await;
    let (_, key) = s
        .post(
            &format!("/api/groups/{g}/keys"),
            &owner,
            json!({"name": "soon", "expiresAt": Utc::now() + chrono::Duration::days(2)}),
        )
        .await;
    s.post(
        &format!("/api/groups/{g}/keys"),
        &owner,
        json!({"name": "later", "expiresAt": Utc::now() + chrono::Duration::days(30)}),
    )
    .await;
    let (st, _) = s
        .post(
            &format!("/api/groups/{g}/alerts"),
            &owner,
            json!({"kind": "key-expiry", "target": hook, "threshold": 3}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let done = alerts(&s).run_once(Utc::now()).await;
    assert_eq!(
        done.len(),
        1,
        "only the key expiring within 3 days: {done:?}"
    );
    assert!(done[0].event.contains(key["id"].as_str().unwrap()));
    assert_eq!(done[0].attempts, 4);
    assert!(
        done[0].error.as_deref().unwrap().contains("500"),
        "{done:?}"
    );
    assert_eq!(got.lock().unwrap().deliveries.len(), 4);
    let (_, audit) = s.get(&format!("/api/audit?groupId={g}"), &owner).await;
    assert!(audit.to_string().contains("alert.failed"), "{audit}");
}

#[tokio::test]
async fn account_and_window_alerts_follow_the_routers_view() {
    let mock = MockUpstream::start("sk-ant-alerts").await.unwrap();
    mock.push([Behavior::AnswerWithHeaders(vec![
        (
            "anthropic-ratelimit-unified-5h-utilization".into(),
            "0.93".into(),
        ),
        (
            "anthropic-ratelimit-unified-5h-reset".into(),
            (Utc::now().timestamp() + 3600).to_string(),
        ),
    ])]);
    let s = spawn().await;
    let (hook, got) = receiver(0).await;
    let (owner, g) = group(&s, json!({})).await;
    let (_, acc) = s
        .post(
            &format!("/api/groups/{g}/accounts"),
            &owner,
            json!({"name": "max", "platform": "claude_api", "baseUrl": mock.url,
                   "credentials": {"apiKey": "sk-ant-alerts"}}),
        )
        .await;
    let account = acc["id"].as_str().unwrap().to_owned();
    let (_, key) = s
        .post(&format!("/api/groups/{g}/keys"), &owner, json!({}))
        .await;
    for (kind, threshold) in [("window", Some(0.9)), ("account", None)] {
        let mut body = json!({"kind": kind, "target": hook});
        if let Some(t) = threshold {
            body["threshold"] = json!(t);
        }
        let (st, r) = s
            .post(&format!("/api/groups/{g}/alerts"), &owner, body)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
    }
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key["key"].as_str().unwrap())
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let done = alerts(&s).run_once(Utc::now()).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        done[0].event.starts_with(&format!("window:{account}:5h")),
        "{done:?}"
    );
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{account}"),
            &owner,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let done = alerts(&s).run_once(Utc::now()).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].event.contains(":disabled:"), "{done:?}");
    let last: Value =
        serde_json::from_slice(&got.lock().unwrap().deliveries.last().unwrap().1).unwrap();
    assert_eq!(last["kind"], "account");
    assert!(last["summary"].as_str().unwrap().contains("disabled"));
}

#[tokio::test]
async fn rules_are_checked_listed_and_deleted_by_those_who_manage_them() {
    let s = spawn().await;
    let (owner, g) = group(&s, json!({})).await;
    let path = format!("/api/groups/{g}/alerts");
    for (body, what) in [
        (
            json!({"kind": "weather", "target": "https://h.example.com"}),
            "kind",
        ),
        (
            json!({"kind": "budget", "target": "ftp://h.example.com"}),
            "target",
        ),
        (
            json!({"kind": "budget", "target": "https://h.example.com", "threshold": 2}),
            "threshold",
        ),
        (
            json!({"kind": "account", "target": "https://h.example.com", "threshold": 0.5}),
            "threshold",
        ),
        (
            json!({"kind": "budget", "target": "http://169.254.169.254/latest"}),
            "not allowed",
        ),
        (
            json!({"kind": "budget", "target": "mailto:ops@example.com"}),
            "SMTP",
        ),
    ] {
        let (st, e) = s.post(&path, &owner, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(what),
            "{e}"
        );
    }
    let (st, made) = s
        .post(
            &path,
            &owner,
            json!({"kind": "window", "target": "https://h.example.com/a"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(made["threshold"], 0.8, "the default");
    let (_, list) = s.get(&path, &owner).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none(), "shown once");
    let (_, stranger) = s.register("alert-stranger@example.com").await;
    assert_eq!(s.get(&path, &stranger).await.0, StatusCode::NOT_FOUND);
    let one = format!("{path}/{}", made["id"].as_str().unwrap());
    assert_eq!(s.delete(&one, &owner).await.0, StatusCode::NO_CONTENT);
    assert_eq!(s.delete(&one, &owner).await.0, StatusCode::NOT_FOUND);

    // Enterprise rules, by the enterprise's owner.
    let (st, e) = s
        .post("/api/enterprises", ADMIN_TOKEN, json!({"name": "Acme"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let ent_path = format!("/api/enterprises/{}/alerts", e["id"].as_str().unwrap());
    let (st, r) = s
        .post(
            &ent_path,
            ADMIN_TOKEN,
            json!({"kind": "budget", "target": "https://h.example.com/e"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    assert_eq!(s.get(&ent_path, &owner).await.0, StatusCode::NOT_FOUND);
}

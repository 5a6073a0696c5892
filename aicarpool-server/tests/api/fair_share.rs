//! The fair share of a subscription window through the server: settings,
//! refusals in the client's protocol, the windows report and who sees
//! what; and two instances on PostgreSQL and Redis agreeing on it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aicarpool_testkit::subscription::{SubscriptionMock, SubscriptionPlan};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::enterprise::join;
use crate::limits::UPSTREAM_KEY;
use crate::support::{spawn, TestServer};

/// $0.20 per 5-hour window: a request below costs about $0.015 ($3 and
/// $15 per million tokens), so the window is tight after nine.
const PLAN: SubscriptionPlan = SubscriptionPlan {
    five_hour_micro_usd: 200_000,
    seven_day_micro_usd: 100_000_000,
    input_per_mtok: 3_000_000,
    output_per_mtok: 15_000_000,
};

pub(crate) async fn subscription() -> SubscriptionMock {
    let now = Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    SubscriptionMock::start(UPSTREAM_KEY, PLAN, now)
        .await
        .unwrap()
}

/// An owner (who will be heavy) with a group on the subscription and a
/// light member; returns (owner token, group, owner key, member token,
/// member id, member key).
pub(crate) async fn carpool(
    s: &TestServer,
    upstream: &str,
) -> (String, String, String, String, String, String) {
    let (owner, group, owner_key, _) = crate::limits::carpool(s, upstream).await;
    let email = format!(
        "light-{}@example.com",
        aicarpool_core::id::new_id().to_lowercase()
    );
    let (member_id, member) = join(s, &owner, &group, &email, "member").await;
    let (status, key) = s
        .post(
            &format!("/api/groups/{group}/keys"),
            &member,
            json!({"name": "cli"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let member_key = key["key"].as_str().unwrap().to_owned();
    (owner, group, owner_key, member, member_id, member_key)
}

pub(crate) async fn message(s: &TestServer, key: &str) -> reqwest::Response {
    s.http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1000,
                      "messages": [{"role": "user", "content": "refactor the parser"}]}))
        .send()
        .await
        .unwrap()
}

/// Sends as `key` until the fair share refuses; returns that answer and
/// how many were served before it.
pub(crate) async fn until_refused(s: &TestServer, key: &str) -> (reqwest::Response, usize) {
    for served in 0..30 {
        let resp = message(s, key).await;
        if resp.status() != StatusCode::OK {
            return (resp, served);
        }
        let _ = resp.bytes().await;
    }
    panic!("the fair share never engaged");
}

pub(crate) async fn assert_fair_share_refusal(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["x-aicarpool-refusal"], "fair-share");
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5 * 3600).contains(&wait), "retry-after {wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`main`"), "whose window: {message}");
    assert!(message.contains("resets at"), "{message}");
    assert!(
        message.contains("other members still have their share"),
        "{message}"
    );
}

#[tokio::test]
async fn settings_are_checked_and_kept() {
    let s = spawn().await;
    let mock = subscription().await;
    let (owner, group, _, member, member_id, _) = carpool(&s, &mock.url).await;
    let (status, body) = s.get(&format!("/api/groups/{group}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fairShare"], json!({"enabled": true, "engageAt": 0.6}));
    assert_eq!(body["fareSplit"], json!({"equalPart": 0.0}));

    let path = format!("/api/groups/{group}");
    for bad in [
        json!({"fairShare": {"engageAt": 1.5}}),
        json!({"fairShare": {"engage": 0.5}}),
        json!({"fareSplit": {"equalPart": -1}}),
    ] {
        let (status, body) = s.patch(&path, &owner, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
    }
    let (status, body) = s
        .patch(
            &path,
            &owner,
            json!({"fairShare": {"enabled": false, "engageAt": 0.8}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["fairShare"],
        json!({"enabled": false, "engageAt": 0.8})
    );
    let (status, _) = s
        .patch(&path, &member, json!({"fairShare": {"enabled": true}}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members cannot switch it");

    let member_path = format!("/api/groups/{group}/members/{member_id}");
    for bad in [
        json!({"shareWeight": 0}),
        json!({"shareWeight": 101}),
        json!({}),
    ] {
        let (status, _) = s.patch(&member_path, &owner, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, body) = s
        .patch(&member_path, &owner, json!({"shareWeight": 3}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["shareWeight"].as_u64(), body["role"].as_str()),
        (Some(3), Some("member"))
    );
    let (_, members) = s.get(&format!("/api/groups/{group}/members"), &owner).await;
    let weights: Vec<u64> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["shareWeight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, vec![1, 3]);

    let (_, audit) = s.get(&format!("/api/audit?groupId={group}"), &owner).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"member.share_weight_changed"),
        "{actions:?}"
    );
    assert!(actions.contains(&"group.changed"), "{actions:?}");
}

#[tokio::test]
async fn a_heavy_member_is_held_to_their_share_and_the_others_go_on() {
    let s = spawn().await;
    let mock = subscription().await;
    let (owner, group, owner_key, member, member_id, member_key) = carpool(&s, &mock.url).await;
    // The light member's first request, then the heavy one's run.
    let resp = message(&s, &member_key).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (refused, served) = until_refused(&s, &owner_key).await;
    assert_fair_share_refusal(refused).await;
    assert!(
        served >= 8,
        "below 60 % nobody is held back ({served} served)"
    );
    assert_eq!(mock.counts().1, 0, "the window itself never ran dry");
    // The light member still goes on.
    for _ in 0..2 {
        assert_eq!(message(&s, &member_key).await.status(), StatusCode::OK);
    }

    let (status, windows) = s.get(&format!("/api/groups/{group}/windows"), &owner).await;
    assert_eq!(status, StatusCode::OK, "{windows}");
    let five = windows
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "5h")
        .unwrap()
        .clone();
    assert_eq!(five["name"], "main");
    assert!(five["utilization"].as_f64().unwrap() >= 0.6, "{five}");
    let capacity = five["capacityEstimateUsd"].as_f64().unwrap();
    assert!((0.18..=0.22).contains(&capacity), "capacity {capacity}");
    let members = five["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "the owner sees everyone");
    let heavy = members
        .iter()
        .find(|m| m["userId"] != member_id.as_str())
        .unwrap();
    let light = members
        .iter()
        .find(|m| m["userId"] == member_id.as_str())
        .unwrap();
    assert_eq!(heavy["state"], "over");
    assert_eq!(light["state"], "within");
    assert!(light["name"].as_str().unwrap().starts_with("light-"));
    assert!(heavy["usedUsd"].as_f64().unwrap() > light["usedUsd"].as_f64().unwrap());

    let (status, mine) = s
        .get(&format!("/api/groups/{group}/windows"), &member)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mine = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "5h")
        .unwrap();
    assert_eq!(
        mine["capacityEstimateUsd"], five["capacityEstimateUsd"],
        "totals too"
    );
    let lines = mine["members"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "a member sees their own line: {lines:?}");
    assert_eq!(lines[0]["userId"], member_id.as_str());

    // The refusal is in the request log, by reason.
    let mut refused = Value::Null;
    for _ in 0..100 {
        let (_, log) = s
            .get(
                &format!("/api/requests?scope=group&id={group}&status=refused"),
                &owner,
            )
            .await;
        if log["rows"].as_array().is_some_and(|r| !r.is_empty()) {
            refused = log;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(refused["rows"][0]["refusal"], "fair-share", "{refused}");
    // And in the usage report, per member and by reason.
    let (_, report) = s
        .get(
            &format!("/api/usage?scope=group&id={group}&groupBy=user"),
            &owner,
        )
        .await;
    let rows = report["rows"].as_array().unwrap();
    let of = |id: &str| {
        rows.iter()
            .find(|r| r["bucket"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of(&member_id)["refusals"]["fair-share"], 0, "{report}");
    let heavy_row = rows
        .iter()
        .find(|r| r["bucket"] != member_id.as_str())
        .unwrap();
    assert_eq!(heavy_row["refusals"]["fair-share"], 1, "{report}");

    // Switched off, the heavy member may drain the window.
    let (status, _) = s
        .patch(
            &format!("/api/groups/{group}"),
            &owner,
            json!({"fairShare": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message(&s, &owner_key).await.status(), StatusCode::OK);
}

//! The audit log over HTTP: who did what to which resource, read by
//! enterprise, group and system admins, never holding a secret.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::enterprise::{assert_error, created, id, join, POOL_KEY};
use crate::support::{self, ADMIN_TOKEN};

#[tokio::test]
async fn audit_log_tells_who_did_what_without_secrets() {
    let s = support::spawn().await;
    let (owner_id, owner) = s.register("audit-owner@acme.test").await;
    let eid = id(&created(&s, "/api/enterprises", &owner, json!({"name": "Acme"})).await);
    let gid = id(&created(
        &s,
        "/api/groups",
        &owner,
        json!({"name": "g", "enterpriseId": eid}),
    )
    .await);
    let aid = id(&created(
        &s,
        &format!("/api/groups/{gid}/accounts"),
        &owner,
        json!({"name": "a", "platform": "claude_api", "credentials": {"apiKey": POOL_KEY}}),
    )
    .await);
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{aid}"),
            &owner,
            json!({"credentials": {"apiKey": "sk-ant-rotated-secret"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .put(
            &format!("/api/groups/{gid}/binding"),
            &owner,
            json!({"mode": "dedicated", "accounts": [{"accountId": aid}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (uid, member) = join(&s, &owner, &gid, "audit-member@acme.test", "member").await;
    let key = created(&s, &format!("/api/groups/{gid}/keys"), &member, json!({})).await;
    let (st, _) = s.delete(&format!("/api/keys/{}", id(&key)), &owner).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .patch(
            &format!("/api/groups/{gid}/members/{uid}"),
            &owner,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .delete(&format!("/api/groups/{gid}/members/{uid}"), &owner)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "audit-owner@acme.test", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    let (st, log) = s
        .get(&format!("/api/audit?enterpriseId={eid}"), &owner)
        .await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "enterprise.created",
        "group.created",
        "account.created",
        "account.changed",
        "binding.changed",
        "member.added",
        "key.issued",
        "key.revoked",
        "member.role_changed",
        "member.removed",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert_eq!(actions[0], "member.removed", "newest first");
    let text = log.to_string();
    for secret in [
        POOL_KEY,
        "sk-ant-rotated-secret",
        key["key"].as_str().unwrap(),
        &owner,
    ] {
        assert!(!text.contains(secret), "the log holds a secret");
    }
    let changed = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "account.changed")
        .unwrap();
    assert_eq!(changed["detail"]["fields"], json!(["credentials"]));
    assert_eq!(changed["actorId"], owner_id);
    assert_eq!(changed["actorEmail"], "audit-owner@acme.test");
    // Group admins read their group's entries; failed logins are for
    // system admins.
    let (st, log) = s
        .get(&format!("/api/audit?groupId={gid}&limit=2"), &owner)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(log.as_array().unwrap().len(), 2);
    let (st, log) = s.get("/api/audit", ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK);
    let failed = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "auth.login_failed")
        .unwrap();
    assert_eq!(failed["detail"]["email"], "audit-owner@acme.test");
    assert!(!log.to_string().contains("wrong password!"));
    let (st, b) = s
        .get(&format!("/api/audit?groupId={gid}&limit=0"), &owner)
        .await;
    assert_error(st, &b, StatusCode::BAD_REQUEST, "limit");

    // A group edit says what changed, from what to what.
    let (st, _) = s
        .patch(
            &format!("/api/groups/{gid}"),
            &owner,
            json!({"name": "renamed", "limits": {"requestsPerMinute": 30}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, log) = s
        .get(&format!("/api/audit?groupId={gid}&limit=1"), &owner)
        .await;
    let entry = &log[0];
    assert_eq!(entry["action"], "group.changed", "{log}");
    assert_eq!(entry["detail"]["fields"], json!(["name", "limits"]));
    assert_eq!(entry["detail"]["after"]["name"], "renamed");
    assert_eq!(entry["detail"]["after"]["limits"]["requestsPerMinute"], 30);
    assert_eq!(entry["actorId"], owner_id);
    // An edit that changes nothing records nothing.
    let (st, _) = s
        .patch(
            &format!("/api/groups/{gid}"),
            &owner,
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, log) = s
        .get(&format!("/api/audit?groupId={gid}&limit=2"), &owner)
        .await;
    let changed = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "group.changed")
        .count();
    assert_eq!(changed, 1, "{log}");
}

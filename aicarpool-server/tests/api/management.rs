//! The management API: identity, groups, invitations, accounts, bindings,
//! member keys and usage, called over HTTP.

use aicarpool_core::key::KeyHash;
use aicarpool_core::org::{GroupRole, Invitation};
use aicarpool_core::usage::{Accuracy, Usage, UsageRecord};
use aicarpool_server::api::caller::sha256_hex;
use aicarpool_server::ServeConfig;
use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, TestServer, ADMIN_TOKEN};

const PASSWORD: &str = "correct horse battery";

/// Creates a group as `token`; returns its id.
async fn group(s: &TestServer, token: &str, name: &str) -> String {
    let (st, body) = s.post("/api/groups", token, json!({"name": name})).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Invites and accepts as a logged-in user with `role`.
async fn join(s: &TestServer, owner: &str, group_id: &str, token: &str, role: &str) {
    let (st, inv) = s
        .post(
            &format!("/api/groups/{group_id}/invitations"),
            owner,
            json!({"role": role}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let t = inv["token"].as_str().unwrap();
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{t}/accept"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

/// A group owned by a new user, with an admin and a member in it.
struct Team {
    group: String,
    owner: (String, String),
    admin: (String, String),
    member: (String, String),
}

async fn team(s: &TestServer, tag: &str) -> Team {
    let owner = s.register(&format!("owner-{tag}@example.com")).await;
    let admin = s.register(&format!("admin-{tag}@example.com")).await;
    let member = s.register(&format!("member-{tag}@example.com")).await;
    let group = group(s, &owner.1, &format!("team {tag}")).await;
    join(s, &owner.1, &group, &admin.1, "admin").await;
    join(s, &owner.1, &group, &member.1, "member").await;
    Team {
        group,
        owner,
        admin,
        member,
    }
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
}

// ---------------------------------------------------------------- identity

#[tokio::test]
async fn register_login_me_logout() {
    let s = support::spawn().await;
    let (st, body) = s
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "Ann@Example.com", "password": PASSWORD, "name": "Ann"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["isSystemAdmin"], false);
    assert!(body["user"]["createdAt"].is_string());
    assert!(body["user"].get("passwordHash").is_none());
    assert!(!body.to_string().contains(PASSWORD));

    let login = json!({"email": "ann@example.com", "password": PASSWORD});
    let (st, body) = s
        .call(Method::POST, "/api/auth/login", None, Some(login))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    let g = group(&s, &token, "mine").await;
    let (st, me) = s.get("/api/me", &token).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["user"]["name"], "Ann");
    assert_eq!(me["enterprises"], json!([]));
    assert_eq!(
        me["groups"],
        json!([{"id": g, "name": "mine", "role": "owner"}])
    );

    let (st, body) = s
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let (st, body) = s.get("/api/me", &token).await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "token");
    let (st, _) = s.call(Method::GET, "/api/me", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_and_register_refusals() {
    let s = support::spawn().await;
    s.register("bob@example.com").await;
    let wrong_pw = json!({"email": "bob@example.com", "password": "not the password"});
    let (st1, b1) = s
        .call(Method::POST, "/api/auth/login", None, Some(wrong_pw))
        .await;
    let no_user = json!({"email": "nobody@example.com", "password": PASSWORD});
    let (st2, b2) = s
        .call(Method::POST, "/api/auth/login", None, Some(no_user))
        .await;
    assert_eq!(st1, StatusCode::UNAUTHORIZED);
    assert_eq!(st2, StatusCode::UNAUTHORIZED);
    assert_eq!(b1, b2, "unknown email and wrong password look the same");

    let dup = json!({"email": "BOB@example.com", "password": PASSWORD, "name": "Bob"});
    let (st, body) = s
        .call(Method::POST, "/api/auth/register", None, Some(dup))
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "email");

    for (bad, field) in [
        (
            json!({"email": "nope", "password": PASSWORD, "name": "x"}),
            "email",
        ),
        (
            json!({"email": "c@example.com", "password": "short", "name": "x"}),
            "password",
        ),
        (
            json!({"email": "c@example.com", "password": PASSWORD, "name": " "}),
            "name",
        ),
        (
            json!({"email": "c@example.com", "password": PASSWORD}),
            "name",
        ),
        (
            json!({"email": 5, "password": PASSWORD, "name": "x"}),
            "email",
        ),
    ] {
        let (st, body) = s
            .call(Method::POST, "/api/auth/register", None, Some(bad))
            .await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, field);
    }
    // Not JSON at all.
    let resp = s
        .http
        .post(format!("{}/api/auth/register", s.url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn signup_can_be_disabled() {
    let s = support::spawn_with(ServeConfig {
        allow_signup: false,
        ..ServeConfig::for_tests(ADMIN_TOKEN)
    })
    .await;
    let body = json!({"email": "d@example.com", "password": PASSWORD, "name": "D"});
    let (st, body) = s
        .call(Method::POST, "/api/auth/register", None, Some(body))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "signup_disabled");

    // An invitation still lets people in.
    let g = group(&s, ADMIN_TOKEN, "closed").await;
    let (_, inv) = s
        .post(
            &format!("/api/groups/{g}/invitations"),
            ADMIN_TOKEN,
            json!({}),
        )
        .await;
    let t = inv["token"].as_str().unwrap();
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{t}/accept"),
            None,
            Some(json!({"email": "d@example.com", "password": PASSWORD, "name": "D"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["groupId"], g.as_str());
}

#[tokio::test]
async fn bootstrap_admin_on_empty_database() {
    let s = support::spawn_with(ServeConfig {
        admin_email: Some("Root@Example.com".into()),
        admin_password: Some("root password 123".into()),
        ..ServeConfig::for_tests(ADMIN_TOKEN)
    })
    .await;
    let login = json!({"email": "root@example.com", "password": "root password 123"});
    let (st, body) = s
        .call(Method::POST, "/api/auth/login", None, Some(login))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["isSystemAdmin"], true);
    let admin_id = body["user"]["id"].clone();
    // The admin token acts as that administrator.
    let (st, me) = s.get("/api/me", ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["user"]["id"], admin_id);
    // No built-in user was needed.
    assert!(s.state.store.user("system").await.unwrap().is_none());
    // Starting again on a non-empty database creates nobody.
    aicarpool_server::api::bootstrap(&s.state).await.unwrap();
    assert_eq!(s.state.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn admin_token_is_a_system_admin() {
    let s = support::spawn().await;
    let (st, me) = s.get("/api/me", ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], "system");
    assert_eq!(me["user"]["isSystemAdmin"], true);
    // Its password can never be used.
    let login = json!({"email": "system@aicarpool.invalid", "password": "!"});
    let (st, _) = s
        .call(Method::POST, "/api/auth/login", None, Some(login))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s.get("/api/me", "test-admin-token-0123456788").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // It sees and manages groups it is not in.
    let (_, alice) = s.register("alice@example.com").await;
    let g = group(&s, &alice, "alice's").await;
    let (st, list) = s.get("/api/groups", ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == g.as_str()));
    let (st, body) = s
        .patch(
            &format!("/api/groups/{g}"),
            ADMIN_TOKEN,
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "renamed");
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    let s = support::spawn().await;
    let (uid, _) = s.register("old@example.com").await;
    let token = "an-old-session-token-with-enough-length";
    let past = Utc::now() - Duration::hours(1);
    s.state
        .store
        .create_session(&aicarpool_core::org::Session {
            token_hash: sha256_hex(token),
            user_id: uid,
            created_at: past - Duration::hours(24),
            expires_at: past,
        })
        .await
        .unwrap();
    let (st, _) = s.get("/api/me", token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

// ------------------------------------------------------------------ groups

#[tokio::test]
async fn group_crud_and_visibility() {
    let s = support::spawn().await;
    let t = team(&s, "crud").await;
    let (_, stranger) = s.register("stranger@example.com").await;
    let g = &t.group;

    let (st, body) = s.get(&format!("/api/groups/{g}"), &t.member.1).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["role"], "member");
    assert_eq!(body["maxMembers"], Value::Null);

    let (st, list) = s.get("/api/groups", &t.admin.1).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["role"], "admin");

    // Outsiders cannot tell the group exists.
    for (m, p) in [
        (Method::GET, format!("/api/groups/{g}")),
        (Method::GET, format!("/api/groups/{g}/members")),
        (Method::DELETE, format!("/api/groups/{g}")),
        (Method::GET, "/api/groups/no_such".to_owned()),
    ] {
        let (st, body) = s.call(m, &p, Some(&stranger), None).await;
        assert_error(st, &body, StatusCode::NOT_FOUND, "group");
    }
    let (st, body) = s
        .patch(&format!("/api/groups/{g}"), &stranger, json!({"name": "x"}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");

    // Members may look, not change.
    let (st, body) = s
        .patch(
            &format!("/api/groups/{g}"),
            &t.member.1,
            json!({"name": "x"}),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "admin");
    let (st, _) = s.delete(&format!("/api/groups/{g}"), &t.member.1).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Admins change settings but do not delete.
    let patch = json!({
        "name": "renamed", "maxMembers": 10,
        "limits": {"requestsPerMinute": 60, "costUsd": {"monthly": 50}}
    });
    let (st, body) = s
        .patch(&format!("/api/groups/{g}"), &t.admin.1, patch)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "renamed");
    assert_eq!(body["maxMembers"], 10);
    assert_eq!(body["limits"]["requestsPerMinute"], 60);
    assert_eq!(body["limits"]["costUsd"]["monthly"], 50.0);
    let (st, body) = s
        .patch(
            &format!("/api/groups/{g}"),
            &t.admin.1,
            json!({"limits": {"costUsd": {"daily": -1}}}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "limits.costUsd.daily");
    let (st, body) = s
        .patch(
            &format!("/api/groups/{g}"),
            &t.admin.1,
            json!({"maxMembers": null}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["maxMembers"], Value::Null);
    assert_eq!(body["name"], "renamed", "absent fields are kept");
    let (st, _) = s.delete(&format!("/api/groups/{g}"), &t.admin.1).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let (st, body) = s.post("/api/groups", &t.owner.1, json!({"name": ""})).await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "name");
    let (st, body) = s
        .post(
            "/api/groups",
            &t.owner.1,
            json!({"name": "e", "enterpriseId": "abc"}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "enterprise");

    // The owner deletes; keys in it stop existing.
    let (st, key) = s
        .post(&format!("/api/groups/{g}/keys"), &t.member.1, json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let (st, _) = s.delete(&format!("/api/groups/{g}"), &t.owner.1).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get(&format!("/api/groups/{g}"), &t.owner.1).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let parsed = aicarpool_core::key::MemberKey::parse(key["key"].as_str().unwrap()).unwrap();
    assert!(s
        .state
        .store
        .key_by_hash(&parsed.hash())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn member_roles_and_removal_revoke_keys() {
    let s = support::spawn().await;
    let t = team(&s, "roles").await;
    let g = &t.group;
    let (st, members) = s
        .get(&format!("/api/groups/{g}/members"), &t.member.1)
        .await;
    assert_eq!(st, StatusCode::OK);
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(members[0]["userId"], t.owner.0.as_str());
    assert_eq!(members[0]["role"], "owner");
    assert!(members[0]["email"].is_string() && members[0]["joinedAt"].is_string());

    let path = |u: &str| format!("/api/groups/{g}/members/{u}");
    // Plain members change nothing; nobody touches the owner or makes one.
    let (st, _) = s
        .patch(&path(&t.admin.0), &t.member.1, json!({"role": "member"}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = s
        .patch(&path(&t.member.0), &t.admin.1, json!({"role": "owner"}))
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "role");
    let (st, _) = s
        .patch(&path(&t.owner.0), &t.admin.1, json!({"role": "member"}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s.delete(&path(&t.owner.0), &t.admin.1).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s.delete(&path(&t.owner.0), &t.owner.1).await;
    assert_eq!(st, StatusCode::CONFLICT, "the owner cannot leave");
    let (st, _) = s
        .patch(&path("nobody"), &t.owner.1, json!({"role": "admin"}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (st, body) = s
        .patch(&path(&t.member.0), &t.admin.1, json!({"role": "admin"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "admin");
    let m = s
        .state
        .store
        .membership(g, &t.member.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.role, GroupRole::Admin);
    let (st, _) = s
        .patch(&path(&t.member.0), &t.owner.1, json!({"role": "member"}))
        .await;
    assert_eq!(st, StatusCode::OK);

    // A member's keys go with them.
    let (st, key) = s
        .post(&format!("/api/groups/{g}/keys"), &t.member.1, json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let hash = aicarpool_core::key::MemberKey::parse(key["key"].as_str().unwrap())
        .unwrap()
        .hash();
    let (st, _) = s.delete(&path(&t.admin.0), &t.member.1).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "members remove only themselves");
    let (st, _) = s.delete(&path(&t.member.0), &t.admin.1).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(s.state.store.key_by_hash(&hash).await.unwrap().is_none());
    let (_, keys) = s.get(&format!("/api/groups/{g}/keys"), &t.owner.1).await;
    assert_eq!(keys, json!([]));
    let (st, _) = s.get(&format!("/api/groups/{g}"), &t.member.1).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Leaving.
    let (st, _) = s.delete(&path(&t.admin.0), &t.admin.1).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, me) = s.get("/api/me", &t.admin.1).await;
    assert_eq!(me["groups"], json!([]));
}

// ------------------------------------------------------------- invitations

#[tokio::test]
async fn invitation_preview_and_accept_logged_in() {
    let s = support::spawn().await;
    let (_, owner) = s.register("inviter@example.com").await;
    let g = group(&s, &owner, "carpool").await;
    let (st, inv) = s
        .post(
            &format!("/api/groups/{g}/invitations"),
            &owner,
            json!({"role": "admin", "maxUses": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let token = inv["token"].as_str().unwrap();
    assert_eq!(token.len(), 43);
    assert_eq!(inv["url"], format!("http://127.0.0.1:4000/invite/{token}"));
    assert_eq!(inv["maxUses"], 2);
    assert_eq!(inv["role"], "admin");
    assert!(inv["expiresAt"].is_string());

    let (st, preview) = s
        .call(
            Method::GET,
            &format!("/api/invitations/{token}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert_eq!(preview["groupId"], g.as_str());
    assert_eq!(preview["groupName"], "carpool");
    assert_eq!(preview["inviter"]["name"], "inviter@example.com");
    assert_eq!(preview["role"], "admin");
    assert_eq!(preview["usesLeft"], 2);
    assert!(!preview.to_string().contains(token));

    let (uid, joiner) = s.register("joiner@example.com").await;
    let accept = format!("/api/invitations/{token}/accept");
    let (st, body) = s.call(Method::POST, &accept, Some(&joiner), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["groupId"], g.as_str());
    assert_eq!(body["user"]["id"], uid.as_str());
    assert_eq!(body["token"], joiner.as_str());
    let m = s.state.store.membership(&g, &uid).await.unwrap().unwrap();
    assert_eq!(m.role, GroupRole::Admin);

    let (st, body) = s
        .call(Method::POST, &accept, Some(&joiner), Some(json!({})))
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "already");
    let (_, preview) = s
        .call(
            Method::GET,
            &format!("/api/invitations/{token}"),
            None,
            None,
        )
        .await;
    assert_eq!(preview["usesLeft"], 1);

    let (st, _) = s
        .call(Method::GET, "/api/invitations/not-a-real-token", None, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.call(Method::POST, &accept, None, None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "anonymous with no body");

    // All fields are optional: no body at all is fine; a non-JSON one is not.
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/groups/{g}/invitations"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], "member");
    assert_eq!(body["maxUses"], Value::Null);
    let resp = s
        .http
        .post(format!("{}/api/groups/{g}/invitations", s.url))
        .bearer_auth(&owner)
        .body("role=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Only owner/admin invite; bad fields are named.
    let (_, other) = s.register("other@example.com").await;
    let (st, _) = s
        .post(&format!("/api/groups/{g}/invitations"), &other, json!({}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for (bad, field) in [
        (json!({"role": "owner"}), "role"),
        (json!({"expiresInHours": 721}), "expiresInHours"),
        (json!({"maxUses": 0}), "maxUses"),
        (json!({"email": "nope"}), "email"),
    ] {
        let (st, body) = s
            .post(&format!("/api/groups/{g}/invitations"), &owner, bad)
            .await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, field);
    }
}

#[tokio::test]
async fn invitation_register_and_join_and_limits() {
    let s = support::spawn().await;
    let (_, owner) = s.register("host@example.com").await;
    let g = group(&s, &owner, "one seat").await;
    let (_, inv) = s
        .post(
            &format!("/api/groups/{g}/invitations"),
            &owner,
            json!({"maxUses": 1}),
        )
        .await;
    let accept = format!("/api/invitations/{}/accept", inv["token"].as_str().unwrap());

    // An existing email must log in first.
    let taken = json!({"email": "host@example.com", "password": PASSWORD, "name": "H"});
    let (st, body) = s.call(Method::POST, &accept, None, Some(taken)).await;
    assert_error(st, &body, StatusCode::CONFLICT, "log in");

    let new = json!({"email": "New@Example.com", "password": PASSWORD, "name": "New"});
    let (st, body) = s.call(Method::POST, &accept, None, Some(new)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], "new@example.com");
    let token = body["token"].as_str().unwrap();
    let (_, me) = s.get("/api/me", token).await;
    assert_eq!(me["groups"][0]["id"], g.as_str());
    assert_eq!(me["groups"][0]["role"], "member");

    // Used up.
    let (_, late) = s.register("late@example.com").await;
    let (st, body) = s.call(Method::POST, &accept, Some(&late), None).await;
    assert_eq!(st, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "invitation_closed");
    let preview = accept.trim_end_matches("/accept");
    let (st, _) = s.call(Method::GET, preview, None, None).await;
    assert_eq!(st, StatusCode::GONE);

    // maxMembers: the group holds 2 now.
    let (st, _) = s
        .patch(
            &format!("/api/groups/{g}"),
            &owner,
            json!({"maxMembers": 2}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, inv) = s
        .post(&format!("/api/groups/{g}/invitations"), &owner, json!({}))
        .await;
    let accept = format!("/api/invitations/{}/accept", inv["token"].as_str().unwrap());
    let (st, body) = s.call(Method::POST, &accept, Some(&late), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "group_full");
}

/// Concurrent accepts of one link into a group with three seats (the
/// owner's among them): exactly two join, the rest are refused as
/// `group_full`, and a refused join leaves its use on the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_never_overfill_a_group() {
    let s = std::sync::Arc::new(support::spawn().await);
    let (_, owner) = s.register("seats@example.com").await;
    let g = group(&s, &owner, "three seats").await;
    let (st, _) = s
        .patch(
            &format!("/api/groups/{g}"),
            &owner,
            json!({"maxMembers": 3}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, inv) = s
        .post(
            &format!("/api/groups/{g}/invitations"),
            &owner,
            json!({"maxUses": 50}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let link = format!("/api/invitations/{}", inv["token"].as_str().unwrap());

    let mut joiners = Vec::new();
    for i in 0..12 {
        joiners.push(s.register(&format!("racer{i}@example.com")).await.1);
    }
    let tasks: Vec<_> = joiners
        .into_iter()
        .map(|token| {
            let (s, accept) = (s.clone(), format!("{link}/accept"));
            tokio::spawn(async move { s.call(Method::POST, &accept, Some(&token), None).await })
        })
        .collect();
    let mut joined = 0;
    for t in tasks {
        let (st, body) = t.await.unwrap();
        if st == StatusCode::OK {
            joined += 1;
        } else {
            assert_eq!(st, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["error"]["code"], "group_full", "{body}");
        }
    }
    assert_eq!(joined, 2);
    let (_, members) = s.get(&format!("/api/groups/{g}/members"), &owner).await;
    assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");
    let (_, preview) = s.call(Method::GET, &link, None, None).await;
    assert_eq!(preview["usesLeft"], 48, "refused joins give their use back");
}

#[tokio::test]
async fn invitation_expired_and_email_restricted() {
    let s = support::spawn().await;
    let (owner_id, owner) = s.register("boss@example.com").await;
    let g = group(&s, &owner, "restricted").await;

    // Expired: written straight to the store.
    let token = "expired-invitation-token-0123456789abcdefgh";
    let now = Utc::now();
    s.state
        .store
        .create_invitation(&Invitation {
            id: aicarpool_core::id::new_id(),
            group_id: g.clone(),
            token_hash: sha256_hex(token),
            email: None,
            role: GroupRole::Member,
            max_uses: None,
            uses: 0,
            expires_at: now - Duration::minutes(1),
            created_by: owner_id,
            created_at: now - Duration::hours(2),
        })
        .await
        .unwrap();
    let (_, someone) = s.register("someone@example.com").await;
    let (st, body) = s
        .call(
            Method::GET,
            &format!("/api/invitations/{token}"),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::GONE, "{body}");
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{token}/accept"),
            Some(&someone),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "invitation_closed");

    let (st, inv) = s
        .post(
            &format!("/api/groups/{g}/invitations"),
            &owner,
            json!({"email": "Invited@Example.com", "expiresInHours": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{inv}");
    let accept = format!("/api/invitations/{}/accept", inv["token"].as_str().unwrap());
    let (st, _) = s.call(Method::POST, &accept, Some(&someone), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let wrong = json!({"email": "intruder@example.com", "password": PASSWORD, "name": "I"});
    let (st, _) = s.call(Method::POST, &accept, None, Some(wrong)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(s
        .state
        .store
        .user_by_email("intruder@example.com")
        .await
        .unwrap()
        .is_none());
    let (_, invited) = s.register("invited@example.com").await;
    let (st, body) = s.call(Method::POST, &accept, Some(&invited), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------- accounts

fn kimi(secret: &str) -> Value {
    json!({
        "name": "kimi-1",
        "platform": "anthropic_compatible",
        "preset": "kimi",
        "credentials": {"apiKey": secret},
        "modelMap": {"claude-sonnet-4-5": "kimi-k2-0905-preview"},
        "proxy": "socks5://bob:hunter2@proxy.local:1080"
    })
}

#[tokio::test]
async fn accounts_create_get_list_without_secrets() {
    let s = support::spawn().await;
    let t = team(&s, "acc").await;
    let g = &t.group;
    let secret = "sk-kimi-very-secret-0123456789";
    let (st, acc) = s
        .post(
            &format!("/api/groups/{g}/accounts"),
            &t.admin.1,
            kimi(secret),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    assert_eq!(acc["baseUrl"], "https://api.moonshot.cn/anthropic");
    assert_eq!(acc["platform"], "anthropic_compatible");
    assert_eq!(acc["preset"], "kimi");
    assert_eq!(acc["groupId"], g.as_str());
    assert_eq!(acc["priority"], 50);
    assert_eq!(acc["weight"], 1);
    assert_eq!(acc["enabled"], true);
    assert_eq!(acc["models"], json!([]));
    assert_eq!(acc["modelMap"]["claude-sonnet-4-5"], "kimi-k2-0905-preview");
    assert_eq!(acc["hasCredentials"], true);
    assert_eq!(acc["proxy"], "socks5://bob:***@proxy.local:1080");
    let id = acc["id"].as_str().unwrap();

    let (st, got) = s.get(&format!("/api/accounts/{id}"), &t.owner.1).await;
    assert_eq!(st, StatusCode::OK);
    let (st, list) = s
        .get(&format!("/api/groups/{g}/accounts"), &t.owner.1)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (st, health) = s
        .get(&format!("/api/accounts/{id}/health"), &t.owner.1)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(health["state"], "healthy");
    for body in [&acc, &got, &list, &health] {
        let text = body.to_string();
        assert!(!text.contains(secret), "secret leaked: {text}");
        assert!(!text.contains("hunter2"), "proxy password leaked: {text}");
    }
    // Sealed at rest, and opens to the key.
    let stored = s.state.store.account(id).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored.credentials.0).contains(secret));
    let creds = s.state.sealer.open(id, &stored.credentials).unwrap();
    assert_eq!(creds.api_key.as_deref(), Some(secret));

    // Members 403, outsiders 404.
    let (_, stranger) = s.register("out@example.com").await;
    let (st, _) = s.get(&format!("/api/accounts/{id}"), &t.member.1).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .get(&format!("/api/groups/{g}/accounts"), &t.member.1)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .post(&format!("/api/groups/{g}/accounts"), &t.member.1, kimi("x"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = s.get(&format!("/api/accounts/{id}"), &stranger).await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "account");
    let (st, _) = s.delete(&format!("/api/accounts/{id}"), &stranger).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // claude_api defaults to the Anthropic API.
    let (st, acc) = s
        .post(
            &format!("/api/groups/{g}/accounts"),
            &t.owner.1,
            json!({"name": "anthropic", "platform": "claude_api", "credentials": {"apiKey": "sk-ant-1"}, "priority": 10}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    assert_eq!(acc["baseUrl"], "https://api.anthropic.com");
    assert_eq!(acc["preset"], Value::Null);
}

#[tokio::test]
async fn account_validation() {
    let s = support::spawn().await;
    let (_, owner) = s.register("val@example.com").await;
    let g = group(&s, &owner, "val").await;
    let path = format!("/api/groups/{g}/accounts");
    let base = |extra: Value| {
        let mut v = json!({"name": "a", "platform": "anthropic_compatible", "preset": "glm",
                           "credentials": {"apiKey": "k"}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    for (body, needle) in [
        // Gemini and OpenAI-compatible accounts take no preset, and the
        // latter need their base URL.
        (base(json!({"platform": "gemini"})), "preset"),
        (
            base(json!({"platform": "openai_compatible", "preset": null})),
            "baseUrl",
        ),
        (base(json!({"platform": "nonsense"})), "platform"),
        (base(json!({"preset": null})), "preset"),
        (base(json!({"preset": "custom"})), "baseUrl"),
        (
            base(json!({"preset": "custom", "baseUrl": "ftp://x.io"})),
            "baseUrl",
        ),
        (base(json!({"platform": "claude_api"})), "preset"),
        (base(json!({"credentials": {}})), "credentials.apiKey"),
        (
            base(json!({"credentials": {"apiKey": "  "}})),
            "credentials.apiKey",
        ),
        (base(json!({"credentials": null})), "credentials.apiKey"),
        (base(json!({"weight": 0})), "weight"),
        (base(json!({"priority": -3})), "priority"),
        (base(json!({"name": ""})), "name"),
        (base(json!({"proxy": "gopher://x"})), "proxy"),
        (base(json!({"models": "all"})), "models"),
        (base(json!({"maxConcurrency": 0})), "maxConcurrency"),
    ] {
        let (st, resp) = s.post(&path, &owner, body.clone()).await;
        assert_error(st, &resp, StatusCode::BAD_REQUEST, needle);
    }
    assert!(s
        .state
        .store
        .accounts_of_group(&g)
        .await
        .unwrap()
        .is_empty());

    let (st, acc) = s
        .post(
            &path,
            &owner,
            base(json!({"preset": "custom", "baseUrl": "https://relay.example.com/anthropic/"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    assert_eq!(acc["baseUrl"], "https://relay.example.com/anthropic");
}

#[tokio::test]
async fn account_patch_and_delete() {
    let s = support::spawn().await;
    let (_, owner) = s.register("patch@example.com").await;
    let g = group(&s, &owner, "p").await;
    let (_, acc) = s
        .post(
            &format!("/api/groups/{g}/accounts"),
            &owner,
            kimi("old-secret-key"),
        )
        .await;
    let id = acc["id"].as_str().unwrap();
    let path = format!("/api/accounts/{id}");
    let patch = json!({
        "name": "kimi-renamed", "priority": 5, "weight": 3, "enabled": false,
        "models": ["kimi-*"], "maxConcurrency": 4, "proxy": null,
        "credentials": {"apiKey": "new-secret-key"}
    });
    let (st, body) = s.patch(&path, &owner, patch).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "kimi-renamed");
    assert_eq!(body["priority"], 5);
    assert_eq!(body["weight"], 3);
    assert_eq!(body["enabled"], false);
    assert_eq!(body["models"], json!(["kimi-*"]));
    assert_eq!(body["maxConcurrency"], 4);
    assert_eq!(body["proxy"], Value::Null);
    assert_eq!(body["baseUrl"], "https://api.moonshot.cn/anthropic");
    assert!(!body.to_string().contains("new-secret-key"));
    let stored = s.state.store.account(id).await.unwrap().unwrap();
    let creds = s.state.sealer.open(id, &stored.credentials).unwrap();
    assert_eq!(creds.api_key.as_deref(), Some("new-secret-key"));
    let (_, health) = s.get(&format!("{path}/health"), &owner).await;
    assert_eq!(health["state"], "disabled");

    // Invalid changes are refused and change nothing.
    let (st, body) = s
        .patch(&path, &owner, json!({"name": "x", "preset": "custom"}))
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "baseUrl");
    let (st, _) = s
        .patch(&path, &owner, json!({"platform": "claude_api"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (_, body) = s.get(&path, &owner).await;
    assert_eq!(body["name"], "kimi-renamed");

    let (st, _) = s.delete(&path, &owner).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get(&path, &owner).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

// ----------------------------------------------------------------- binding

#[tokio::test]
async fn binding_put_get_and_dedicated_conflicts() {
    let s = support::spawn().await;
    let t = team(&s, "bind").await;
    let owner = &t.owner.1;
    let g1 = &t.group;
    let g2 = group(&s, owner, "second").await;
    let mk = |name: &str, prio: i32| json!({"name": name, "platform": "claude_api", "credentials": {"apiKey": "k"}, "priority": prio});
    let (_, a1) = s
        .post(&format!("/api/groups/{g1}/accounts"), owner, mk("a1", 20))
        .await;
    let (_, a2) = s
        .post(&format!("/api/groups/{g1}/accounts"), owner, mk("a2", 10))
        .await;
    let (a1, a2) = (a1["id"].as_str().unwrap(), a2["id"].as_str().unwrap());

    // Implicit default: the group's own accounts, by priority.
    let (st, b) = s.get(&format!("/api/groups/{g1}/binding"), owner).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["implicit"], true);
    assert_eq!(b["mode"], "shared");
    assert_eq!(b["accounts"][0]["accountId"], a2);
    assert_eq!(b["accounts"][1]["accountId"], a1);
    let (st, _) = s
        .get(&format!("/api/groups/{g1}/binding"), &t.member.1)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let put = json!({"mode": "hybrid", "accounts": [
        {"accountId": a1, "priority": 1},
        {"accountId": a2, "dedicated": false, "weight": 2}
    ]});
    let (st, b) = s
        .put(&format!("/api/groups/{g1}/binding"), &t.admin.1, put)
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    assert_eq!(b["implicit"], false);
    assert_eq!(b["accounts"][0]["dedicated"], true);
    assert_eq!(b["accounts"][0]["priority"], 1);
    assert_eq!(b["accounts"][1]["dedicated"], false);
    let (_, got) = s.get(&format!("/api/groups/{g1}/binding"), owner).await;
    assert_eq!(got, b);

    // a1 is dedicated to g1: g2 cannot bind it; a2 is shared: g2 may.
    let (st, body) = s
        .put(
            &format!("/api/groups/{g2}/binding"),
            owner,
            json!({"mode": "shared", "accounts": [{"accountId": a1}]}),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, a1);
    let (st, body) = s
        .put(
            &format!("/api/groups/{g2}/binding"),
            owner,
            json!({"mode": "shared", "accounts": [{"accountId": a2}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // …and now g1 cannot make a2 dedicated.
    let (st, body) = s
        .put(
            &format!("/api/groups/{g1}/binding"),
            owner,
            json!({"mode": "dedicated", "accounts": [{"accountId": a1}, {"accountId": a2}]}),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, a2);

    // Bad bodies.
    for (body, needle, want) in [
        (
            json!({"mode": "solo", "accounts": []}),
            "mode",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"mode": "shared", "accounts": [{"accountId": a1}, {"accountId": a1}]}),
            "twice",
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"mode": "shared", "accounts": [{"accountId": "missing"}]}),
            "accounts[0].accountId",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, resp) = s
            .put(&format!("/api/groups/{g1}/binding"), owner, body)
            .await;
        assert_error(st, &resp, want, needle);
    }
    // An account of a group the caller does not manage cannot be bound.
    let (_, other) = s.register("other-bind@example.com").await;
    let g3 = group(&s, &other, "third").await;
    let (st, body) = s
        .put(
            &format!("/api/groups/{g3}/binding"),
            &other,
            json!({"mode": "shared", "accounts": [{"accountId": a2}]}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, a2);
}

// -------------------------------------------------------------------- keys

#[tokio::test]
async fn keys_create_list_patch_rotate_delete() {
    let s = support::spawn().await;
    let t = team(&s, "keys").await;
    let g = &t.group;
    let body = json!({
        "name": "laptop", "expiresAt": "2099-01-01T00:00:00Z",
        "models": ["claude-sonnet-*"], "clients": ["claude-cli/*"],
        "limits": {"requestsPerMinute": 60, "costUsd": {"daily": 5}}
    });
    let (st, k) = s
        .post(&format!("/api/groups/{g}/keys"), &t.member.1, body)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("aicp_{g}_{}_", t.member.0)),
        "{key}"
    );
    assert_eq!(k["userId"], t.member.0.as_str());
    assert_eq!(k["groupId"], g.as_str());
    assert_eq!(k["name"], "laptop");
    assert_eq!(k["enabled"], true);
    assert_eq!(k["services"], json!(["claude", "gemini", "openai"]));
    assert_eq!(k["limits"]["requestsPerMinute"], 60);
    assert!(k["hint"].as_str().unwrap().ends_with('…'));
    assert_eq!(
        k["guide"]["claudeCode"]["ANTHROPIC_BASE_URL"],
        "http://127.0.0.1:4000/api"
    );
    assert_eq!(
        k["guide"]["claudeCode"]["ANTHROPIC_AUTH_TOKEN"],
        key.as_str()
    );
    assert!(k["guide"]["env"].as_str().unwrap().contains(&key));
    let id = k["id"].as_str().unwrap().to_owned();
    let hash = aicarpool_core::key::MemberKey::parse(&key).unwrap().hash();
    assert!(s.state.store.key_by_hash(&hash).await.unwrap().is_some());

    // An admin issues a key for a member; a member cannot for others.
    let for_member = json!({"userId": t.member.0, "services": ["claude"]});
    let (st, k2) = s
        .post(&format!("/api/groups/{g}/keys"), &t.admin.1, for_member)
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k2}");
    assert_eq!(k2["name"], "default");
    let (st, _) = s
        .post(
            &format!("/api/groups/{g}/keys"),
            &t.member.1,
            json!({"userId": t.admin.0}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = s
        .post(
            &format!("/api/groups/{g}/keys"),
            &t.admin.1,
            json!({"userId": "nobody"}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "userId");
    let (st, _) = s
        .post(&format!("/api/groups/{g}/keys"), &t.admin.1, json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, k4) = s
        .post(
            &format!("/api/groups/{g}/keys"),
            &t.owner.1,
            json!({"services": ["gemini"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(k4["guide"].get("claudeCode").is_none());

    for (bad, needle) in [
        (json!({"expiresAt": "2001-01-01T00:00:00Z"}), "expiresAt"),
        (json!({"expiresAt": "tomorrow"}), "expiresAt"),
        (json!({"services": ["claude", "bard"]}), "services"),
        (json!({"services": []}), "services"),
        (json!({"clients": vec!["x"; 51]}), "clients"),
        (json!({"models": ["x".repeat(201)]}), "models[0]"),
        (json!({"limits": {"concurrency": -1}}), "limits.concurrency"),
        (json!({"name": "x".repeat(101)}), "name"),
    ] {
        let (st, body) = s
            .post(&format!("/api/groups/{g}/keys"), &t.member.1, bad)
            .await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, needle);
    }

    // Lists: admins see all, members their own, and never a key.
    let (_, all) = s.get(&format!("/api/groups/{g}/keys"), &t.admin.1).await;
    assert_eq!(all.as_array().unwrap().len(), 4);
    let (_, own) = s.get(&format!("/api/groups/{g}/keys"), &t.member.1).await;
    let own = own.as_array().unwrap();
    assert_eq!(own.len(), 2);
    assert!(own
        .iter()
        .all(|k| k["userId"] == t.member.0.as_str() && k.get("key").is_none()));
    assert!(!all.to_string().contains(&key));
    let (st, _) = s
        .get(
            &format!("/api/keys/{}", k4["id"].as_str().unwrap()),
            &t.member.1,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "another member's key is invisible"
    );
    let (st, got) = s.get(&format!("/api/keys/{id}"), &t.owner.1).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got.get("key").is_none());

    // Patch: the member renames and disables; policy is the admins' to change.
    let (st, body) = s
        .patch(
            &format!("/api/keys/{id}"),
            &t.member.1,
            json!({"limits": {"requestsPerMinute": 0}}),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "owner or admins");
    let (st, p) = s
        .patch(
            &format!("/api/keys/{id}"),
            &t.member.1,
            json!({"name": "desk", "enabled": false, "expiresAt": null}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let (st, p) = s
        .patch(
            &format!("/api/keys/{id}"),
            &t.owner.1,
            json!({"services": ["claude"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["name"], "desk");
    assert_eq!(p["enabled"], false);
    assert_eq!(p["expiresAt"], Value::Null);
    assert_eq!(p["services"], json!(["claude"]));
    assert_eq!(
        p["models"],
        json!(["claude-sonnet-*"]),
        "absent fields are kept"
    );
    assert!(p.get("key").is_none());
    let rec = s.state.store.key_by_hash(&hash).await.unwrap().unwrap();
    assert!(!rec.enabled);

    // Rotate: same id and settings, new secret; the old one is gone.
    let (st, r) = s
        .call(
            Method::POST,
            &format!("/api/keys/{id}/rotate"),
            Some(&t.member.1),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["name"], "desk");
    let new_key = r["key"].as_str().unwrap();
    assert_ne!(new_key, key);
    assert_eq!(r["guide"]["claudeCode"]["ANTHROPIC_AUTH_TOKEN"], new_key);
    assert!(s.state.store.key_by_hash(&hash).await.unwrap().is_none());
    let new_hash: KeyHash = aicarpool_core::key::MemberKey::parse(new_key)
        .unwrap()
        .hash();
    assert!(s
        .state
        .store
        .key_by_hash(&new_hash)
        .await
        .unwrap()
        .is_some());

    // Delete.
    let (_, stranger) = s.register("keythief@example.com").await;
    let (st, _) = s.delete(&format!("/api/keys/{id}"), &stranger).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.delete(&format!("/api/keys/{id}"), &t.admin.1).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(s
        .state
        .store
        .key_by_hash(&new_hash)
        .await
        .unwrap()
        .is_none());
    let (st, _) = s.get(&format!("/api/keys/{id}"), &t.admin.1).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

// ------------------------------------------------------------------- usage

#[tokio::test]
async fn usage_reports_and_permissions() {
    let s = support::spawn().await;
    let t = team(&s, "usage").await;
    let g = &t.group;
    let (_, k) = s
        .post(&format!("/api/groups/{g}/keys"), &t.member.1, json!({}))
        .await;
    let key_id = k["id"].as_str().unwrap().to_owned();
    let (_, acc) = s
        .post(
            &format!("/api/groups/{g}/accounts"),
            &t.owner.1,
            json!({"name": "a", "platform": "claude_api", "credentials": {"apiKey": "k"}}),
        )
        .await;
    let account_id = acc["id"].as_str().unwrap().to_owned();
    let record = |n: u64, status: u16, at: chrono::DateTime<Utc>| UsageRecord {
        id: aicarpool_core::id::new_id(),
        at,
        key_id: key_id.clone(),
        user_id: t.member.0.clone(),
        group_id: g.clone(),
        account_id: Some(account_id.clone()),
        model: "claude-sonnet-4-5".into(),
        usage: Usage {
            input_tokens: n,
            output_tokens: 2 * n,
            cache_write_5m_tokens: 1,
            cache_write_1h_tokens: 1,
            cache_read_tokens: 3,
        },
        cost_micro_usd: 1_500_000,
        latency_ms: 10,
        status,
        accuracy: Accuracy::Exact,
    };
    let day = |d: u32| {
        chrono::NaiveDate::from_ymd_opt(2026, 3, d)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
    };
    s.state
        .store
        .insert_usage(&[record(10, 200, day(1)), record(5, 500, day(2))])
        .await
        .unwrap();

    // The member's own usage, by day (the default scope).
    let (st, r) = s.get("/api/usage?groupBy=day", &t.member.1).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["totals"]["requests"], 2);
    assert_eq!(r["totals"]["inputTokens"], 15);
    assert_eq!(r["totals"]["outputTokens"], 30);
    assert_eq!(r["totals"]["cacheWriteTokens"], 4);
    assert_eq!(r["totals"]["cacheReadTokens"], 6);
    assert_eq!(r["totals"]["costUsd"], 3.0);
    assert_eq!(r["totals"]["errors"], 1);
    assert_eq!(r["rows"].as_array().unwrap().len(), 2);
    assert_eq!(r["rows"][0]["bucket"], "2026-03-01");

    let (st, r) = s
        .get(
            &format!("/api/usage?scope=key&id={key_id}&from=2026-03-02&to=2026-03-02"),
            &t.member.1,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["totals"]["requests"], 1);

    // Group and account scope: owner/admin only.
    let (st, _) = s
        .get(&format!("/api/usage?scope=group&id={g}"), &t.member.1)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = s
        .get(
            &format!("/api/usage?scope=group&id={g}&groupBy=user"),
            &t.admin.1,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["rows"][0]["bucket"], t.member.0.as_str());
    let (st, _) = s
        .get(
            &format!("/api/usage?scope=account&id={account_id}"),
            &t.member.1,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = s
        .get(
            &format!("/api/usage?scope=account&id={account_id}"),
            &t.owner.1,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["totals"]["requests"], 2);
    let (st, _) = s
        .get(&format!("/api/usage?scope=key&id={key_id}"), &t.admin.1)
        .await;
    assert_eq!(st, StatusCode::OK);

    // Others' usage.
    let (_, stranger) = s.register("nosy@example.com").await;
    let (st, _) = s
        .get(&format!("/api/usage?scope=group&id={g}"), &stranger)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .get(&format!("/api/usage?scope=key&id={key_id}"), &stranger)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .get(
            &format!("/api/usage?scope=user&id={}", t.member.0),
            &t.admin.1,
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, r) = s
        .get(
            &format!("/api/usage?scope=user&id={}", t.member.0),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["totals"]["requests"], 2);

    for (q, needle) in [
        ("scope=planet&id=x", "scope"),
        ("scope=group", "id"),
        ("from=last-week", "from"),
        ("to=2026-13-01", "to"),
        ("groupBy=week", "groupBy"),
    ] {
        let (st, body) = s.get(&format!("/api/usage?{q}"), &t.member.1).await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, needle);
    }
}

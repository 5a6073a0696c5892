//! Groups: create, read, update, delete, who sees what, roles and removal.

use super::*;

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

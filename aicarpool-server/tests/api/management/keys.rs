//! Member keys: created, listed, changed, rotated and deleted, by whom.

use super::*;

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

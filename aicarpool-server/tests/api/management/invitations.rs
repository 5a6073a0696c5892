//! Invitation links: preview, accept (logged in or by registering), limits, expiry and email restriction.

use super::*;

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
            target: aicarpool_core::org::InvitationTarget::Group {
                group_id: g.clone(),
                role: GroupRole::Member,
            },
            token_hash: sha256_hex(token),
            email: None,
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

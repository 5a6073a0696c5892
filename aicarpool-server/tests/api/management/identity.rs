//! Register, login, sessions, sign-up switch, the bootstrap administrator and the admin token.

use super::*;

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

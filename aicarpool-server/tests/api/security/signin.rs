//! Sign-in and registration throttling, and password strength.

use std::time::{Duration, Instant};

use aicarpool_server::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, TestServer, ADMIN_TOKEN};

const PASSWORD: &str = "correct horse battery";

/// A login: status, `retry-after` (seconds) and body.
async fn login(s: &TestServer, email: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
    let resp = s
        .http
        .post(format!("{}/api/auth/login", s.url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        status,
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    )
}

fn config(change: impl FnOnce(&mut ServeConfig)) -> ServeConfig {
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    change(&mut config);
    config
}

fn assert_too_many(status: StatusCode, retry_after: Option<u64>, body: &Value) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts", "{body}");
    let secs = retry_after.unwrap_or_else(|| panic!("no retry-after: {body}"));
    assert!((1..=900).contains(&secs), "retry-after {secs}");
}

#[tokio::test]
async fn after_many_wrong_passwords_the_right_one_is_refused_too() {
    let s = support::spawn().await;
    s.register("victim@example.com").await;
    let mut refused = 0;
    for i in 0..200 {
        let (st, retry, body) = login(&s, "victim@example.com", &format!("guess number {i}")).await;
        if i < 5 {
            assert_eq!(st, StatusCode::UNAUTHORIZED, "guess {i}: {body}");
        } else {
            assert_too_many(st, retry, &body);
            refused += 1;
        }
    }
    assert_eq!(refused, 195);
    let (st, retry, body) = login(&s, " Victim@Example.com ", PASSWORD).await;
    assert_too_many(st, retry, &body);
    assert!(body.get("token").is_none());
    // The lock is on that email, not on everyone at this address.
    s.register("bystander@example.com").await;
    let (st, _, body) = login(&s, "bystander@example.com", PASSWORD).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_lockout_reads_the_same_for_known_and_unknown_emails() {
    let s = support::spawn().await;
    s.register("known@example.com").await;
    let mut last = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        for _ in 0..5 {
            let (st, _, _) = login(&s, email, "not the password at all").await;
            assert_eq!(st, StatusCode::UNAUTHORIZED);
        }
        let (st, retry, body) = login(&s, email, "not the password at all").await;
        assert_too_many(st, retry, &body);
        last.push(body);
    }
    assert_eq!(last[0], last[1]);
}

#[tokio::test]
async fn a_successful_sign_in_resets_the_count() {
    let s = support::spawn().await;
    s.register("forgetful@example.com").await;
    for _ in 0..3 {
        for _ in 0..4 {
            let (st, _, _) = login(&s, "forgetful@example.com", "almost the password").await;
            assert_eq!(st, StatusCode::UNAUTHORIZED);
        }
        let (st, _, body) = login(&s, "forgetful@example.com", PASSWORD).await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn a_lockout_ends_and_then_grows() {
    let s = support::spawn_with(config(|c| {
        c.sign_in.login_max_failures = 2;
        c.sign_in.login_lockout_secs = 1;
    }))
    .await;
    s.register("patient@example.com").await;
    for _ in 0..2 {
        login(&s, "patient@example.com", "wrong wrong wrong").await;
    }
    let (st, retry, body) = login(&s, "patient@example.com", PASSWORD).await;
    assert_too_many(st, retry, &body);
    assert_eq!(retry, Some(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // One more failure after the lock locks for twice as long.
    let (st, _, _) = login(&s, "patient@example.com", "wrong wrong wrong").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, retry, body) = login(&s, "patient@example.com", PASSWORD).await;
    assert_too_many(st, retry, &body);
    assert_eq!(retry, Some(2));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, _, body) = login(&s, "patient@example.com", PASSWORD).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_unknown_email_storm_from_one_address_is_throttled() {
    let s = support::spawn_with(config(|c| c.sign_in.login_max_failures_per_address = 20)).await;
    s.register("regular@example.com").await;
    let mut statuses = Vec::new();
    for i in 0..60 {
        let (st, retry, body) = login(&s, &format!("nobody{i}@example.com"), PASSWORD).await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            assert_too_many(st, retry, &body);
        }
        statuses.push(st);
    }
    let refused = statuses
        .iter()
        .filter(|st| **st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(refused, 40, "{statuses:?}");
    assert!(statuses[..20]
        .iter()
        .all(|st| *st == StatusCode::UNAUTHORIZED));
    // The address is locked, for every account.
    let (st, retry, body) = login(&s, "regular@example.com", PASSWORD).await;
    assert_too_many(st, retry, &body);
}

#[tokio::test]
async fn registrations_are_throttled_per_address() {
    let s = support::spawn_with(config(|c| c.sign_in.signups_per_address_per_hour = 3)).await;
    for i in 0..3 {
        s.register(&format!("new{i}@example.com")).await;
    }
    let resp = s
        .http
        .post(format!("{}/api/auth/register", s.url))
        .json(&json!({"email": "new3@example.com", "password": PASSWORD, "name": "n"}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts");
    assert!(retry.is_some_and(|r| r > 3000 && r <= 3600), "{retry:?}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// An unknown email is refused after the same Argon2 work as a wrong
/// password: skipping it would answer visibly faster.
#[tokio::test]
async fn unknown_and_known_emails_take_as_long_to_refuse() {
    let s = support::spawn_with(config(|c| c.sign_in.login_max_failures = 1000)).await;
    s.register("timed@example.com").await;
    // The first unknown refusal also builds the dummy hash.
    login(&s, "warmup@example.com", "not it, not it").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..9 {
        for (email, into) in [
            ("timed@example.com", &mut known),
            ("stranger@example.com", &mut unknown),
        ] {
            let started = Instant::now();
            let (st, _, _) = login(&s, email, &format!("wrong {i}")).await;
            into.push(started.elapsed());
            assert_eq!(st, StatusCode::UNAUTHORIZED);
        }
    }
    let (known, unknown) = (median(known), median(unknown));
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "known {known:?}, unknown {unknown:?}"
    );
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_reason() {
    let s = support::spawn().await;
    for (i, weak) in [
        "12345678",
        "password",
        "aaaaaaaa",
        "        ",
        "password123",
        "1234567890",
        "qwertyuiop",
        "weakling-7@example.com",
    ]
    .iter()
    .enumerate()
    {
        let email = format!("weakling-{i}@example.com");
        let (st, body) = s
            .call(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"email": email, "password": weak, "name": "Weakling"})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "`{weak}`: {body}");
        assert_eq!(body["error"]["code"], "weak_password", "`{weak}`: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        let reason = message.trim_start_matches("password is too weak: ");
        assert!(reason.len() > 10, "no reason for `{weak}`: {message}");
    }
    let (st, body) = s
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "strong@example.com", "password": "correct horse battery staple", "name": "S"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_weak_administrator_password_stops_the_start() {
    let config = config(|c| {
        c.admin_email = Some("root@example.com".into());
        c.admin_password = Some("password123".into());
    });
    let err = aicarpool_server::build_state(config).await.err();
    let message = format!("{:#}", err.expect("a weak admin password is refused"));
    assert!(message.contains("AICARPOOL_ADMIN_PASSWORD"), "{message}");
}

async fn password_change(
    s: &TestServer,
    token: &str,
    current: &str,
    new: &str,
) -> (StatusCode, Value) {
    s.post(
        "/api/auth/password",
        token,
        json!({"current": current, "new": new}),
    )
    .await
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_keeps_the_callers() {
    let s = support::spawn().await;
    let (uid, mine) = s.register("changer@example.com").await;
    let (st, other) = s
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "changer@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let other = other["token"].as_str().unwrap().to_owned();
    let new = "lantern meadow quartz";

    let (st, body) = password_change(&s, &mine, "wrong current pass", new).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let (st, body) = password_change(&s, &mine, PASSWORD, "password123").await;
    assert_eq!(body["error"]["code"], "weak_password", "{body}");
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s.get("/api/me", &other).await;
    assert_eq!(st, StatusCode::OK, "refusals change nothing");

    let (st, body) = password_change(&s, &mine, PASSWORD, new).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    let (st, _) = s.get("/api/me", &other).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the other session is ended");
    let (st, me) = s.get("/api/me", &mine).await;
    assert_eq!(st, StatusCode::OK, "the caller stays signed in: {me}");
    let (st, _, _) = login(&s, "changer@example.com", PASSWORD).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the old password is gone");
    let (st, _, body) = login(&s, "changer@example.com", new).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    let (st, log) = s.get("/api/audit", ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK);
    let changed = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "auth.password_changed")
        .unwrap_or_else(|| panic!("no entry in {log}"));
    assert_eq!(changed["targetId"], uid);
    assert_eq!(changed["detail"]["otherSessionsEnded"], 1);
    assert!(!log.to_string().contains(new));
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_a_sign_in() {
    let s = support::spawn().await;
    let (_, stolen) = s.register("stolen@example.com").await;
    for i in 0..5 {
        let (st, _) = password_change(
            &s,
            &stolen,
            &format!("guess {i} guess"),
            "lantern meadow quartz",
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, body) = password_change(&s, &stolen, PASSWORD, "lantern meadow quartz").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (st, retry, body) = login(&s, "stolen@example.com", PASSWORD).await;
    assert_too_many(st, retry, &body);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_caller_only() {
    let s = support::spawn().await;
    let (_, first) = s.register("everywhere@example.com").await;
    let (st, _, body) = login(&s, "everywhere@example.com", PASSWORD).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let second = body["token"].as_str().unwrap().to_owned();
    let (_, bystander) = s.register("bystander@example.com").await;

    let (st, body) = s
        .call(Method::POST, "/api/auth/logout-all", Some(&first), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{body}");
    for token in [&first, &second] {
        let (st, _) = s.get("/api/me", token).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _) = s.get("/api/me", &bystander).await;
    assert_eq!(st, StatusCode::OK);
    let (st, log) = s.get("/api/audit", ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::OK);
    let ended = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "auth.logged_out_everywhere")
        .unwrap_or_else(|| panic!("no entry in {log}"));
    assert_eq!(ended["detail"]["sessionsEnded"], 2);
}

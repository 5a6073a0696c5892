//! Nobody is added to an enterprise, department or group without accepting.
//! An owner naming an email learns nothing about whether it has an account.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, TestServer};

/// Registers a user; (id, token).
async fn person(s: &TestServer, email: &str) -> (String, String) {
    s.register(email).await
}

/// An enterprise owned by a fresh user, with one department: (owner
/// token, enterprise id, department id).
async fn enterprise(s: &TestServer) -> (String, String, String) {
    let (_, owner) = person(s, "owner@acme.test").await;
    let (st, e) = s
        .post("/api/enterprises", &owner, json!({"name": "Acme"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{e}");
    let eid = e["id"].as_str().unwrap().to_owned();
    let (st, d) = s
        .post(
            &format!("/api/enterprises/{eid}/departments"),
            &owner,
            json!({"name": "Engineering"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    (owner, eid, d["id"].as_str().unwrap().to_owned())
}

/// What an invitation answer shows apart from its random parts: the
/// field names, and every value but the id, token, link and expiry.
fn shape(answer: &Value) -> Value {
    let mut v = answer.clone();
    if let Some(o) = v.as_object_mut() {
        for random in ["id", "token", "url", "expiresAt"] {
            assert!(o.contains_key(random), "{random} missing from {answer}");
            o.insert(random.into(), Value::Null);
        }
        if o.contains_key("email") {
            o.insert("email".into(), Value::Null);
        }
    }
    v
}

async fn accept(s: &TestServer, answer: &Value, token: &str) -> (StatusCode, Value) {
    let t = answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    s.call(
        Method::POST,
        &format!("/api/invitations/{t}/accept"),
        Some(token),
        None,
    )
    .await
}

/// The answer to inviting `email`, which must be 202.
async fn invite(s: &TestServer, path: &str, owner: &str, body: Value) -> Value {
    let (st, answer) = s.post(path, owner, body).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["invited"], true, "{answer}");
    assert!(answer.get("userId").is_none() || answer["userId"].is_string());
    answer
}

async fn enterprise_roles(s: &TestServer, owner: &str, eid: &str) -> Vec<String> {
    let (st, members) = s
        .get(&format!("/api/enterprises/{eid}/members"), owner)
        .await;
    assert_eq!(st, StatusCode::OK, "{members}");
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_enterprise_role_waits_for_the_persons_consent() {
    let s = support::spawn().await;
    let (owner, eid, _) = enterprise(&s).await;
    let (_, alice) = person(&s, "alice@example.com").await;
    let path = format!("/api/enterprises/{eid}/members");

    let registered = invite(
        &s,
        &path,
        &owner,
        json!({"email": "alice@example.com", "role": "admin"}),
    )
    .await;
    let unregistered = invite(
        &s,
        &path,
        &owner,
        json!({"email": "nobody-here@example.com", "role": "admin"}),
    )
    .await;
    assert_eq!(
        shape(&registered),
        shape(&unregistered),
        "the answer tells nothing about accounts"
    );
    assert!(registered.get("userId").is_none(), "{registered}");
    assert!(!enterprise_roles(&s, &owner, &eid)
        .await
        .contains(&"alice@example.com".to_owned()));
    let (_, me) = s.get("/api/me", &alice).await;
    assert_eq!(
        me["enterprises"],
        json!([]),
        "not a member before accepting"
    );
    let (st, _) = s.get(&format!("/api/enterprises/{eid}"), &alice).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Only the invited person may accept, and the owner's link does not
    // work for anyone else.
    let (_, mallory) = person(&s, "mallory@example.com").await;
    let (st, body) = accept(&s, &registered, &mallory).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, body) = accept(&s, &registered, &owner).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    let (st, joined) = accept(&s, &registered, &alice).await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert_eq!(joined["enterpriseId"], eid);
    assert!(enterprise_roles(&s, &owner, &eid)
        .await
        .contains(&"alice@example.com".to_owned()));
    let (_, me) = s.get("/api/me", &alice).await;
    assert_eq!(me["enterprises"][0]["role"], "admin", "{me}");
    // One use.
    let (st, _) = accept(&s, &registered, &alice).await;
    assert_eq!(st, StatusCode::GONE);

    // The unregistered address may register through its link.
    let t = unregistered["token"].as_str().unwrap();
    let (st, joined) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{t}/accept"),
            None,
            Some(json!({"email": "nobody-here@example.com",
                        "password": "correct horse battery", "name": "New"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert!(enterprise_roles(&s, &owner, &eid)
        .await
        .contains(&"nobody-here@example.com".to_owned()));
}

#[tokio::test]
async fn an_enterprise_invitation_by_user_id_shows_no_email() {
    let s = support::spawn().await;
    let (owner, eid, _) = enterprise(&s).await;
    let (bob_id, bob) = person(&s, "bob@example.com").await;
    let answer = invite(
        &s,
        &format!("/api/enterprises/{eid}/members"),
        &owner,
        json!({"userId": bob_id, "role": "owner"}),
    )
    .await;
    assert!(!answer.to_string().contains("bob@example.com"), "{answer}");
    assert!(!enterprise_roles(&s, &owner, &eid)
        .await
        .contains(&"bob@example.com".to_owned()));
    let (st, joined) = accept(&s, &answer, &bob).await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    let (_, me) = s.get("/api/me", &bob).await;
    assert_eq!(me["enterprises"][0]["role"], "owner", "{me}");
}

#[tokio::test]
async fn a_department_admin_waits_for_the_persons_consent() {
    let s = support::spawn().await;
    let (owner, _, dept) = enterprise(&s).await;
    let (_, lead) = person(&s, "lead@example.com").await;
    let path = format!("/api/departments/{dept}/admins");
    let registered = invite(&s, &path, &owner, json!({"email": "lead@example.com"})).await;
    let unregistered = invite(&s, &path, &owner, json!({"email": "ghost@example.com"})).await;
    assert_eq!(shape(&registered), shape(&unregistered));

    let admins = |d: Value| -> Vec<String> {
        d["admins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, d) = s.get(&format!("/api/departments/{dept}"), &owner).await;
    assert!(admins(d.clone()).is_empty(), "{d}");
    let (st, _) = s
        .post(
            "/api/groups",
            &lead,
            json!({"name": "g", "departmentId": dept}),
        )
        .await;
    assert!(st.is_client_error(), "no power before accepting: {st}");

    let (_, mallory) = person(&s, "mallory@example.com").await;
    let (st, _) = accept(&s, &registered, &mallory).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, joined) = accept(&s, &registered, &lead).await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert_eq!(joined["departmentId"], dept);
    let (_, d) = s.get(&format!("/api/departments/{dept}"), &owner).await;
    assert_eq!(admins(d), vec!["lead@example.com".to_owned()]);
    let (st, g) = s
        .post(
            "/api/groups",
            &lead,
            json!({"name": "g", "departmentId": dept}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{g}");
}

async fn group_members(s: &TestServer, owner: &str, gid: &str) -> Vec<String> {
    let (st, m) = s.get(&format!("/api/groups/{gid}/members"), owner).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    m.as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_group_invitation_by_email_waits_for_the_persons_consent() {
    let s = support::spawn().await;
    let (_, owner) = person(&s, "carpooler@example.com").await;
    let (st, g) = s.post("/api/groups", &owner, json!({"name": "car"})).await;
    assert_eq!(st, StatusCode::CREATED);
    let gid = g["id"].as_str().unwrap().to_owned();
    let (_, carol) = person(&s, "carol@example.com").await;
    let path = format!("/api/groups/{gid}/invitations");
    let (st, registered) = s
        .post(&path, &owner, json!({"email": "carol@example.com"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{registered}");
    let (st, unregistered) = s
        .post(&path, &owner, json!({"email": "nobody-yet@example.com"}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(shape(&registered), shape(&unregistered));

    assert!(!group_members(&s, &owner, &gid)
        .await
        .contains(&"carol@example.com".to_owned()));
    let (st, _) = s.get(&format!("/api/groups/{gid}"), &carol).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, mallory) = person(&s, "mallory@example.com").await;
    let (st, _) = accept(&s, &registered, &mallory).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, joined) = accept(&s, &registered, &carol).await;
    assert_eq!(st, StatusCode::OK, "{joined}");
    assert!(group_members(&s, &owner, &gid)
        .await
        .contains(&"carol@example.com".to_owned()));
}

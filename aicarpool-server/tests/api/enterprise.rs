//! Enterprise mode over HTTP: enterprises, the department tree, groups in
//! departments, the account pool and its bindings, delete rules, the audit
//! log, and members calling the data plane through a pool account.

use aicarpool_testkit::{fixtures, MockUpstream};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, TestServer, ADMIN_TOKEN};

pub(crate) const POOL_KEY: &str = "sk-ant-enterprise-pool-secret";

pub(crate) fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

pub(crate) fn assert_error(status: StatusCode, body: &Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
}

pub(crate) async fn created(s: &TestServer, path: &str, token: &str, body: Value) -> Value {
    let (st, v) = s.post(path, token, body).await;
    assert_eq!(st, StatusCode::CREATED, "POST {path}: {v}");
    v
}

/// Accepts the invitation of a 202 answer as `token`'s user.
pub(crate) async fn accept_invitation(s: &TestServer, invited: &Value, token: &str) -> Value {
    let t = invited["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no invitation in {invited}"));
    let (st, b) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{t}/accept"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b
}

/// A member of `group` through an invitation; returns their session token.
pub(crate) async fn join(
    s: &TestServer,
    admin: &str,
    group: &str,
    email: &str,
    role: &str,
) -> (String, String) {
    let (uid, token) = s.register(email).await;
    let inv = created(
        s,
        &format!("/api/groups/{group}/invitations"),
        admin,
        json!({"role": role}),
    )
    .await;
    let t = inv["token"].as_str().unwrap();
    let (st, b) = s
        .call(
            Method::POST,
            &format!("/api/invitations/{t}/accept"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    (uid, token)
}

#[tokio::test]
async fn enterprise_walkthrough_pool_serves_its_groups() {
    let upstream = MockUpstream::start(POOL_KEY).await.unwrap();
    let s = support::spawn().await;
    let (_, owner) = s.register("ceo@acme.test").await;
    let e = created(
        &s,
        "/api/enterprises",
        &owner,
        json!({"name": "Acme", "monthlyBudgetUsd": 500}),
    )
    .await;
    let eid = id(&e);
    assert_eq!(e["role"], "owner");
    assert_eq!(e["monthlyBudgetUsd"], 500.0);

    // Departments: Engineering ⊃ Platform; Sales.
    let deps = format!("/api/enterprises/{eid}/departments");
    let eng = id(&created(&s, &deps, &owner, json!({"name": "Engineering"})).await);
    let platform = id(&created(
        &s,
        &deps,
        &owner,
        json!({"name": "Platform", "parentId": eng}),
    )
    .await);
    let sales = id(&created(&s, &deps, &owner, json!({"name": "Sales"})).await);
    let (st, tree) = s.get(&deps, &owner).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(tree.as_array().unwrap().len(), 2, "{tree}");
    assert_eq!(tree[0]["name"], "Engineering");
    assert_eq!(tree[0]["children"][0]["id"], platform);

    // A department admin for Engineering, invited by email; they accept.
    let (lead_id, lead) = s.register("lead@acme.test").await;
    let (st, body) = s
        .post(
            &format!("/api/departments/{eng}/admins"),
            &owner,
            json!({"email": "lead@acme.test"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    accept_invitation(&s, &body, &lead).await;
    let (st, body) = s
        .post(
            &format!("/api/departments/{eng}/admins"),
            &owner,
            json!({"userId": lead_id}),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "already");

    // The lead creates a group under Platform (below Engineering), not Sales.
    let g = created(
        &s,
        "/api/groups",
        &lead,
        json!({"name": "infra", "departmentId": platform}),
    )
    .await;
    let gid = id(&g);
    assert_eq!(g["enterpriseId"], eid);
    assert_eq!(g["departmentId"], platform);
    let (st, body) = s
        .post(
            "/api/groups",
            &lead,
            json!({"name": "nope", "departmentId": sales}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");

    // The enterprise pool: one account, shared by the group.
    let pool = created(
        &s,
        &format!("/api/enterprises/{eid}/accounts"),
        &owner,
        json!({"name": "pool-1", "platform": "claude_api", "baseUrl": upstream.url,
               "credentials": {"apiKey": POOL_KEY}}),
    )
    .await;
    let pid = id(&pool);
    assert_eq!(pool["enterpriseId"], eid);
    assert!(!pool.to_string().contains(POOL_KEY));
    let (st, body) = s
        .post(
            &format!("/api/enterprises/{eid}/accounts"),
            &lead,
            json!({"name": "x", "platform": "claude_api", "credentials": {"apiKey": "k"}}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "department admins do not own the pool: {body}"
    );

    // A group admin binds the pool to their group and sees the binding,
    // the account (never its credentials), but cannot change it.
    let (_, gadmin) = join(&s, &lead, &gid, "gadmin@acme.test", "admin").await;
    let (st, b) = s
        .put(
            &format!("/api/groups/{gid}/binding"),
            &gadmin,
            json!({"mode": "shared", "accounts": [{"accountId": pid}]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, a) = s.get(&format!("/api/accounts/{pid}"), &gadmin).await;
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(a["hasCredentials"], true);
    assert!(!a.to_string().contains(POOL_KEY));
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{pid}"),
            &gadmin,
            json!({"name": "mine"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, health) = s.get(&format!("/api/accounts/{pid}/health"), &owner).await;
    assert_eq!(st, StatusCode::OK, "{health}");
    let (st, all) = s
        .get(&format!("/api/enterprises/{eid}/accounts"), &owner)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 1);

    // A member's key goes through the pool account to the upstream.
    let (_, member) = join(&s, &gadmin, &gid, "dev@acme.test", "member").await;
    let key = created(
        &s,
        &format!("/api/groups/{gid}/keys"),
        &member,
        json!({"name": "laptop"}),
    )
    .await;
    let secret = key["key"].as_str().unwrap().to_owned();
    let captured = fixtures::claude_code_authtoken();
    let mut req = s.http.post(format!("{}/api/v1/messages", s.url));
    for (name, value) in captured.replayable_headers() {
        req = req.header(name, value);
    }
    let resp = req
        .bearer_auth(&secret)
        .body(captured.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.bytes().await.unwrap();
    assert_eq!(upstream.hits(), 1);

    // /api/me shows the enterprise with the caller's role.
    let (_, me) = s.get("/api/me", &lead).await;
    assert_eq!(me["enterprises"][0]["id"], eid);
    assert_eq!(me["enterprises"][0]["role"], "member");
    let (_, me) = s.get("/api/me", &owner).await;
    assert_eq!(me["enterprises"][0]["role"], "owner");

    // Enterprise usage and department usage see the request.
    let mut seen = Value::Null;
    for _ in 0..200 {
        let (st, body) = s
            .get(&format!("/api/usage?scope=enterprise&id={eid}"), &owner)
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        seen = body["totals"]["requests"].clone();
        if seen == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1);
    let (st, body) = s
        .get(&format!("/api/usage?scope=department&id={eng}"), &lead)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        body["totals"]["requests"], 1,
        "Engineering includes Platform"
    );
    let (st, body) = s
        .get(&format!("/api/usage?scope=department&id={sales}"), &owner)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["totals"]["requests"], 0);

    // Deleting the enterprise deletes its groups: the key stops at once.
    let (st, body) = s.delete(&format!("/api/departments/{eng}"), &owner).await;
    assert_error(st, &body, StatusCode::CONFLICT, "sub-department");
    let (st, _) = s.delete(&format!("/api/enterprises/{eid}"), &lead).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.delete(&format!("/api/enterprises/{eid}"), &owner).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let mut req = s.http.post(format!("{}/api/v1/messages", s.url));
    for (name, value) in captured.replayable_headers() {
        req = req.header(name, value);
    }
    let resp = req
        .bearer_auth(&secret)
        .body(captured.body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (st, _) = s.get(&format!("/api/groups/{gid}"), &owner).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(&format!("/api/accounts/{pid}"), ADMIN_TOKEN).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pool_accounts_stay_in_their_enterprise_and_dedicated_serves_one_group() {
    let s = support::spawn().await;
    let (_, owner) = s.register("own@one.test").await;
    let e1 = id(&created(&s, "/api/enterprises", &owner, json!({"name": "One"})).await);
    let e2 = id(&created(&s, "/api/enterprises", &owner, json!({"name": "Two"})).await);
    let acct = json!({"name": "p", "platform": "claude_api", "credentials": {"apiKey": "sk-x"}});
    let p1 = id(&created(
        &s,
        &format!("/api/enterprises/{e1}/accounts"),
        &owner,
        acct.clone(),
    )
    .await);
    let g1 = id(&created(
        &s,
        "/api/groups",
        &owner,
        json!({"name": "a", "enterpriseId": e1}),
    )
    .await);
    let g1b = id(&created(
        &s,
        "/api/groups",
        &owner,
        json!({"name": "b", "enterpriseId": e1}),
    )
    .await);
    let g2 = id(&created(
        &s,
        "/api/groups",
        &owner,
        json!({"name": "c", "enterpriseId": e2}),
    )
    .await);
    let carpool = id(&created(&s, "/api/groups", &owner, json!({"name": "d"})).await);

    let bind = |mode: &str| json!({"mode": mode, "accounts": [{"accountId": p1}]});
    for g in [&g2, &carpool] {
        let (st, body) = s
            .put(&format!("/api/groups/{g}/binding"), &owner, bind("shared"))
            .await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, "another enterprise");
        // Not even a system admin breaks the rule.
        let (st, _) = s
            .put(
                &format!("/api/groups/{g}/binding"),
                ADMIN_TOKEN,
                bind("shared"),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
    }
    let (st, body) = s
        .put(
            &format!("/api/groups/{g1}/binding"),
            &owner,
            bind("dedicated"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = s
        .put(
            &format!("/api/groups/{g1b}/binding"),
            &owner,
            bind("shared"),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "dedicated");
    let (st, _) = s
        .put(&format!("/api/groups/{g1}/binding"), &owner, bind("shared"))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s
        .put(
            &format!("/api/groups/{g1b}/binding"),
            &owner,
            bind("shared"),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a shared pool account serves several groups: {body}"
    );

    // Groups move only inside their enterprise.
    let d1 = id(&created(
        &s,
        &format!("/api/enterprises/{e1}/departments"),
        &owner,
        json!({"name": "x"}),
    )
    .await);
    let d2 = id(&created(
        &s,
        &format!("/api/enterprises/{e2}/departments"),
        &owner,
        json!({"name": "y"}),
    )
    .await);
    let (st, g) = s
        .patch(
            &format!("/api/groups/{g1}"),
            &owner,
            json!({"departmentId": d1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{g}");
    assert_eq!(g["departmentId"], d1);
    let (st, body) = s
        .patch(
            &format!("/api/groups/{g1}"),
            &owner,
            json!({"departmentId": d2}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "departmentId");
    let (st, body) = s
        .patch(
            &format!("/api/groups/{carpool}"),
            &owner,
            json!({"departmentId": d1}),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "carpool");
    let (st, g) = s
        .patch(
            &format!("/api/groups/{g1}"),
            &owner,
            json!({"departmentId": null}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(g["departmentId"], Value::Null);
    let (st, _) = s.delete(&format!("/api/departments/{d1}"), &owner).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "an empty department is deleted");
}

#[tokio::test]
async fn bad_input_names_field_and_reason() {
    let s = support::spawn().await;
    let (_, owner) = s.register("val@acme.test").await;
    let cases = [
        ("/api/enterprises", json!({"name": ""}), "name"),
        (
            "/api/enterprises",
            json!({"name": "x".repeat(101)}),
            "name must be at most 100",
        ),
        (
            "/api/enterprises",
            json!({"name": "x", "monthlyBudgetUsd": -1}),
            "monthlyBudgetUsd",
        ),
        (
            "/api/enterprises",
            json!({"name": "x", "colour": "red"}),
            "colour",
        ),
        (
            "/api/groups",
            json!({"name": "x", "maxMembers": 0}),
            "maxMembers",
        ),
        (
            "/api/groups",
            json!({"name": "x", "enterpriseId": "nope"}),
            "enterpriseId",
        ),
    ];
    for (path, body, needle) in cases {
        let (st, b) = s.post(path, &owner, body).await;
        assert_error(st, &b, StatusCode::BAD_REQUEST, needle);
    }
    let eid = id(&created(&s, "/api/enterprises", &owner, json!({"name": "Acme"})).await);
    let deps = format!("/api/enterprises/{eid}/departments");
    let (st, b) = s
        .post(&deps, &owner, json!({"name": "d", "parentId": "missing"}))
        .await;
    assert_error(st, &b, StatusCode::BAD_REQUEST, "parentId");
    // Eight levels at most, and never below itself.
    let mut parent: Option<String> = None;
    let mut chain = Vec::new();
    for i in 0..8 {
        let d = created(
            &s,
            &deps,
            &owner,
            json!({"name": format!("l{i}"), "parentId": parent}),
        )
        .await;
        parent = Some(id(&d));
        chain.push(id(&d));
    }
    let (st, b) = s
        .post(&deps, &owner, json!({"name": "l8", "parentId": parent}))
        .await;
    assert_error(st, &b, StatusCode::BAD_REQUEST, "at most 8 deep");
    let (st, b) = s
        .patch(
            &format!("/api/departments/{}", chain[0]),
            &owner,
            json!({"parentId": chain[3]}),
        )
        .await;
    assert_error(st, &b, StatusCode::BAD_REQUEST, "below itself");
    // Members: invited (an unknown email too), duplicate → 409, the last
    // owner stays.
    let (st, b) = s
        .post(
            &format!("/api/enterprises/{eid}/members"),
            &owner,
            json!({"email": "nobody@acme.test"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{b}");
    let (_, second) = s.register("second@acme.test").await;
    let (st, m) = s
        .post(
            &format!("/api/enterprises/{eid}/members"),
            &owner,
            json!({"email": "second@acme.test"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{m}");
    assert_eq!(m["role"], "admin");
    let joined = accept_invitation(&s, &m, &second).await;
    assert_eq!(joined["enterpriseId"], eid);
    let (st, b) = s
        .post(
            &format!("/api/enterprises/{eid}/members"),
            &owner,
            json!({"email": "second@acme.test"}),
        )
        .await;
    assert_error(st, &b, StatusCode::CONFLICT, "already");
    let (_, me) = s.get("/api/me", &owner).await;
    let my_id = me["user"]["id"].as_str().unwrap();
    let (st, b) = s
        .delete(&format!("/api/enterprises/{eid}/members/{my_id}"), &owner)
        .await;
    assert_error(st, &b, StatusCode::CONFLICT, "owner");
    let (st, b) = s
        .post(
            "/api/auth/register",
            "",
            json!({"email": "VAL@acme.test", "password": "correct horse battery", "name": "v"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "duplicate email: {b}");
}

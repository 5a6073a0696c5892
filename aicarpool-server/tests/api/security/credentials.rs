//! Upstream credentials stay tied to where they go, and never show.

use aicarpool_testkit::proxy::HttpProxy;
use aicarpool_testkit::MockUpstream;
use reqwest::StatusCode;
use serde_json::json;

use super::setup::{messages, team};
use crate::support::spawn;

const OWNER_KEY: &str = "sk-ant-owners-own-key-0123456789";

#[tokio::test]
async fn an_admin_cannot_send_the_owners_key_elsewhere() {
    let real = MockUpstream::start(OWNER_KEY).await.unwrap();
    let attacker = MockUpstream::start("anything").await.unwrap();
    let s = spawn().await;
    let t = team(&s).await;
    let (st, acc) = t
        .add_account(
            &s,
            &t.owner,
            json!({"name": "owner's", "platform": "claude_api", "baseUrl": real.url,
                   "credentials": {"apiKey": OWNER_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    let id = acc["id"].as_str().unwrap();
    let key = t.bind_and_key(&s, &[id]).await;
    assert_eq!(messages(&s, &key).await.0, StatusCode::OK);

    // The admin points it at a server of theirs, keeping the sealed key.
    let (st, changed) = s
        .patch(
            &format!("/api/accounts/{id}"),
            &t.admin,
            json!({"baseUrl": attacker.url}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{changed}");
    assert_eq!(changed["hasCredentials"], false, "{changed}");
    let (st, body) = messages(&s, &key).await;
    assert!(!st.is_success(), "{st} {body}");
    for r in attacker.received() {
        let leaked = r
            .headers
            .values()
            .any(|v| v.to_str().unwrap_or_default().contains(OWNER_KEY));
        assert!(!leaked, "the owner's key reached the new base URL");
    }

    // The audit log says from what to what, and that the key was dropped.
    let (st, audit) = s
        .get(&format!("/api/audit?groupId={}", t.group), &t.owner)
        .await;
    assert_eq!(st, StatusCode::OK, "{audit}");
    let entry = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .and_then(|e| e.iter().find(|e| e["action"] == "account.changed"))
        .cloned()
        .unwrap_or_else(|| panic!("no account.changed entry: {audit}"));
    let details = &entry["detail"];
    assert_eq!(details["baseUrl"]["from"], real.url.as_str(), "{entry}");
    assert_eq!(details["baseUrl"]["to"], attacker.url.as_str(), "{entry}");
    assert_eq!(details["credentialsDropped"], true, "{entry}");

    // With a new key in the same request, the move is the owner's choice.
    let (st, changed) = s
        .patch(
            &format!("/api/accounts/{id}"),
            &t.owner,
            json!({"baseUrl": real.url, "credentials": {"apiKey": OWNER_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{changed}");
    assert_eq!(changed["hasCredentials"], true);
    assert_eq!(messages(&s, &key).await.0, StatusCode::OK);

    // A preset or proxy change drops it too; other edits keep it.
    let (_, renamed) = s
        .patch(
            &format!("/api/accounts/{id}"),
            &t.admin,
            json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(renamed["hasCredentials"], true, "{renamed}");
    let (_, proxied) = s
        .patch(
            &format!("/api/accounts/{id}"),
            &t.admin,
            json!({"proxy": "http://127.0.0.1:9"}),
        )
        .await;
    assert_eq!(proxied["hasCredentials"], false, "{proxied}");
}

#[tokio::test]
async fn urls_hold_no_credentials_and_proxy_passwords_are_sealed() {
    let upstream = MockUpstream::start(OWNER_KEY).await.unwrap();
    let proxy = HttpProxy::start(Some(("carpool", "PROXYPASS-SECRET")))
        .await
        .unwrap();
    let s = spawn().await;
    let t = team(&s).await;
    let (st, body) = t
        .add_account(
            &s,
            &t.owner,
            json!({"name": "a", "platform": "claude_api",
                   "baseUrl": format!("http://user:BASEPASS-SECRET@{}", upstream.addr),
                   "credentials": {"apiKey": OWNER_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.to_string().contains("BASEPASS-SECRET"), "{body}");

    let proxy_url = proxy.url.clone(); // with the password in it
    let (st, acc) = t
        .add_account(
            &s,
            &t.owner,
            json!({"name": "proxied", "platform": "claude_api", "baseUrl": upstream.url,
                   "proxy": proxy_url, "credentials": {"apiKey": OWNER_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    assert!(!acc.to_string().contains("PROXYPASS-SECRET"), "{acc}");
    assert!(
        acc["proxy"].as_str().unwrap().contains("carpool:***@"),
        "{acc}"
    );
    let id = acc["id"].as_str().unwrap();
    // At rest: the stored URL has the mark, the password is sealed.
    let stored = s.state.store.account(id).await.unwrap().unwrap();
    assert!(
        !stored.proxy.clone().unwrap().contains("PROXYPASS"),
        "{stored:?}"
    );
    let opened = s.state.sealer.open(id, &stored.credentials).unwrap();
    assert_eq!(opened.proxy_password.as_deref(), Some("PROXYPASS-SECRET"));
    // And the proxy still gets it.
    let key = t.bind_and_key(&s, &[id]).await;
    let (st, body) = messages(&s, &key).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(
        proxy.seen().iter().any(|r| r.authorized),
        "{:?}",
        proxy.seen()
    );
    // A new key keeps the sealed proxy password.
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{id}"),
            &t.owner,
            json!({"credentials": {"apiKey": OWNER_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let seen = proxy.seen().len();
    assert_eq!(messages(&s, &key).await.0, StatusCode::OK);
    assert!(proxy.seen().len() > seen);
    assert!(
        proxy.seen().iter().all(|r| r.authorized),
        "{:?}",
        proxy.seen()
    );
}

#[tokio::test]
async fn a_member_key_is_no_upstream_credential() {
    let s = spawn().await;
    let t = team(&s).await;
    let key = t.bind_and_key(&s, &[]).await;
    for body in [
        json!({"name": "loop", "platform": "claude_api", "credentials": {"apiKey": key}}),
        json!({"name": "loop", "platform": "claude_oauth", "credentials": {"accessToken": key}}),
    ] {
        let (st, answer) = t.add_account(&s, &t.owner, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.to_string().contains("member key"), "{answer}");
        assert!(!answer.to_string().contains(&key), "{answer}");
    }
}

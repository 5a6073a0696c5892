//! Upstream accounts: created, listed and read without secrets, validated, changed and deleted.

use super::*;

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

//! The `/api/ai-proxy` data plane through the HTTP server: a team sets up
//! Gemini, OpenAI-compatible and Claude accounts over the management API,
//! then members call as Gemini CLI, Codex and the SDKs do; usage is
//! reported per protocol.

use std::time::Duration;

use aicarpool_testkit::{
    fixtures, MockGemini, MockOpenAi, MockUpstream, GEMINI_ANSWER, OPENAI_ANSWER,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{spawn, TestServer};

const KEY: &str = "sk-ai-proxy-upstream";

struct Team {
    token: String,
    group: String,
    key: String,
    key_id: String,
    guide: Value,
    accounts: Vec<String>,
}

/// A group with a Gemini, an OpenAI-compatible and a Claude account.
async fn team(s: &TestServer, gemini: &str, openai: &str, claude: &str) -> Team {
    let (_, token) = s
        .register(&format!(
            "owner-{}@example.com",
            aicarpool_core::id::new_id().to_lowercase()
        ))
        .await;
    let (_, group) = s
        .post("/api/groups", &token, json!({"name": "polyglots"}))
        .await;
    let group = group["id"].as_str().unwrap().to_owned();
    let mut accounts = Vec::new();
    for body in [
        json!({"name": "gemini", "platform": "gemini", "baseUrl": gemini, "credentials": {"apiKey": KEY}}),
        json!({"name": "openai", "platform": "openai_compatible", "baseUrl": format!("{openai}/v1"),
               "credentials": {"apiKey": KEY}, "models": ["gpt-*"]}),
        json!({"name": "claude", "platform": "claude_api", "baseUrl": claude, "credentials": {"apiKey": KEY}}),
    ] {
        let (st, a) = s
            .post(&format!("/api/groups/{group}/accounts"), &token, body)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{a}");
        accounts.push(a["id"].as_str().unwrap().to_owned());
    }
    let entries: Vec<Value> = accounts.iter().map(|id| json!({"accountId": id})).collect();
    let (st, b) = s
        .put(
            &format!("/api/groups/{group}/binding"),
            &token,
            json!({"mode": "dedicated", "accounts": entries}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, k) = s
        .post(
            &format!("/api/groups/{group}/keys"),
            &token,
            json!({"name": "cli"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{k}");
    Team {
        token,
        group,
        key: k["key"].as_str().unwrap().to_owned(),
        key_id: k["id"].as_str().unwrap().to_owned(),
        guide: k["guide"].clone(),
        accounts,
    }
}

async fn usage(s: &TestServer, t: &Team, query: &str, requests: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (st, body) = s
            .get(
                &format!("/api/usage?scope=key&id={}{query}", t.key_id),
                &t.token,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        if body["totals"]["requests"].as_u64().unwrap_or(0) >= requests {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("usage never reached {requests} requests: {last}");
}

#[tokio::test]
async fn gemini_codex_and_sdks_through_the_server() {
    let s = spawn().await;
    let gemini = MockGemini::start(KEY).await.unwrap();
    let openai = MockOpenAi::start(KEY).await.unwrap();
    let claude = MockUpstream::start(KEY).await.unwrap();
    let t = team(&s, &gemini.url, &openai.url, &claude.url).await;

    // The key guide points every client at the public URL's ai-proxy.
    let public = t.guide["geminiCli"]["GOOGLE_GEMINI_BASE_URL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(public.ends_with("/api/ai-proxy"), "{public}");
    assert_eq!(t.guide["geminiCli"]["GEMINI_API_KEY"], t.key);
    assert_eq!(
        t.guide["geminiCli"]["settingsJson"]["security"]["auth"]["selectedType"],
        "gemini-api-key"
    );
    let toml = t.guide["codex"]["configToml"].as_str().unwrap();
    assert!(
        toml.contains(&format!("base_url = \"{public}/v1\"")),
        "{toml}"
    );
    assert!(
        toml.contains("wire_api = \"responses\"")
            && toml.contains("env_key = \"AICARPOOL_API_KEY\"")
    );
    assert_eq!(t.guide["openai"]["OPENAI_BASE_URL"], format!("{public}/v1"));
    let proxy = format!("{}/api/ai-proxy", s.url);

    // Gemini CLI: the key as x-goog-api-key, streaming.
    let cli = fixtures::gemini_cli_model_flag();
    let mut req = s.http.post(format!("{}/api/ai-proxy{}", s.url, cli.path));
    for (n, v) in cli.replayable_headers() {
        req = req.header(n, v);
    }
    let resp = req
        .header("x-goog-api-key", &t.key)
        .body(cli.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("Gemini") && text.contains("finishReason"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));

    // google-genai with ?key= on /v1.
    let genai = fixtures::py_genai_generate();
    let resp = s
        .http
        .post(format!(
            "{}/api/ai-proxy{}?key={}",
            s.url, genai.path, t.key
        ))
        .header("content-type", "application/json")
        .body(genai.body.clone())
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        GEMINI_ANSWER
    );

    // Codex: Responses, streaming, Bearer.
    let codex = fixtures::codex_responses();
    let mut req = s.http.post(format!("{}/api/ai-proxy{}", s.url, codex.path));
    for (n, v) in codex.replayable_headers() {
        req = req.header(n, v);
    }
    let resp = req
        .bearer_auth(&t.key)
        .body(codex.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(text.contains("event: response.completed"), "{text}");
    assert!(text.contains("Hello from the mock OpenAI"));

    // The openai SDK's chat, served natively; and a Claude model through
    // the unified chat path, translated.
    let chat = fixtures::py_openai_chat_nonstream();
    let v: Value = s
        .http
        .post(format!("{proxy}/v1/chat/completions"))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(chat.body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], OPENAI_ANSWER);
    let v: Value = s
        .http
        .post(format!("{proxy}/chat"))
        .bearer_auth(&t.key)
        .json(
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(claude.hits(), 1);

    // The models the key may use.
    let v: Value = s
        .http
        .get(format!("{proxy}/v1/models"))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"gpt-4o-mini")
            && ids.contains(&"gemini-2.5-flash")
            && ids.contains(&"claude-sonnet-4-5"),
        "{ids:?}"
    );

    // Usage per protocol, by model.
    let report = usage(&s, &t, "&groupBy=model", 5).await;
    let models: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["bucket"].as_str())
        .collect();
    for m in [
        "gemini-2.5-flash",
        "gpt-5-codex",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
    ] {
        assert!(models.contains(&m), "{m} missing from {models:?}");
    }
    assert!(report["totals"]["outputTokens"].as_u64().unwrap() > 0);
    assert_eq!(report["totals"]["errors"], 0);
    let (_, by_account) = s
        .get(
            &format!("/api/usage?scope=account&id={}", t.accounts[0]),
            &t.token,
        )
        .await;
    assert_eq!(
        by_account["totals"]["requests"], 2,
        "two Gemini requests: {by_account}"
    );
    let _ = t.group;
}

#[tokio::test]
async fn the_ai_proxy_edges_through_the_server() {
    let s = spawn().await;
    let gemini = MockGemini::start(KEY).await.unwrap();
    let openai = MockOpenAi::start(KEY).await.unwrap();
    let claude = MockUpstream::start(KEY).await.unwrap();
    let t = team(&s, &gemini.url, &openai.url, &claude.url).await;
    let proxy = format!("{}/api/ai-proxy", s.url);

    // Codex's WebSocket attempt is refused at once, not upgraded.
    let started = std::time::Instant::now();
    let resp = s
        .http
        .get(format!("{proxy}/v1/responses"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Errors in each path's protocol.
    let resp = s
        .http
        .post(format!(
            "{proxy}/v1beta/models/gemini-2.5-flash:generateContent"
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["status"],
        "UNAUTHENTICATED"
    );
    let resp = s
        .http
        .post(format!("{proxy}/v1/chat/completions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["type"],
        "authentication_error"
    );
    let resp = s
        .http
        .delete(format!("{proxy}/v1/chat/completions"))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = s
        .http
        .post(format!("{proxy}/nothing/here"))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Bodies over the limit: 413 in Gemini's shape on a Gemini path.
    let big = vec![b' '; aicarpool_core::gateway::MAX_BODY_BYTES + 1];
    let resp = s
        .http
        .post(format!(
            "{proxy}/v1beta/models/gemini-2.5-flash:generateContent"
        ))
        .header("x-goog-api-key", &t.key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], 413);

    // Account tests speak each account's protocol.
    for id in &t.accounts {
        let (st, v) = s
            .post(&format!("/api/accounts/{id}/test"), &t.token, json!({}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "{v}");
    }
    assert!(gemini
        .received()
        .iter()
        .any(|r| r.path.contains(":generateContent")));
    assert!(openai.received().iter().any(|r| r.path == "/v1/models"));
}

#[tokio::test]
async fn account_rules_for_gemini_and_openai_compatible() {
    let s = spawn().await;
    let (_, token) = s.register("rules@example.com").await;
    let (_, group) = s
        .post("/api/groups", &token, json!({"name": "rules"}))
        .await;
    let path = format!("/api/groups/{}/accounts", group["id"].as_str().unwrap());
    let (st, v) = s
        .post(
            &path,
            &token,
            json!({"name": "g", "platform": "gemini", "credentials": {"apiKey": "k"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["baseUrl"], "https://generativelanguage.googleapis.com");
    let (st, v) = s
        .post(
            &path,
            &token,
            json!({"name": "o", "platform": "openai_compatible", "credentials": {"apiKey": "k"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("baseUrl"),
        "{v}"
    );
    let (st, _) = s
        .post(&path, &token, json!({"name": "o", "platform": "gemini", "preset": "kimi", "credentials": {"apiKey": "k"}}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = s
        .post(&path, &token, json!({"name": "o", "platform": "openai_compatible",
                                    "baseUrl": "https://api.openai.com/v1", "credentials": {"apiKey": "k"}}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _) = s
        .patch(
            &format!("/api/accounts/{}", v["id"].as_str().unwrap()),
            &token,
            json!({"baseUrl": null}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "an openai_compatible account keeps its baseUrl"
    );
}

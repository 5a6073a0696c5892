//! Member limits over HTTP: set through the management API, enforced on
//! the data plane, reported with unpriced models flagged, exported as CSV,
//! and kept across restarts of a server on a SQLite file — a graceful stop
//! loses nothing, a hard stop at most the writer's unflushed batch.

use std::time::Duration;

use aicarpool_core::limit::{Scope, Window};
use aicarpool_server::{AppState, ServeConfig};
use aicarpool_testkit::MockUpstream;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{report_with, spawn, TestServer, ADMIN_TOKEN};

pub(crate) const UPSTREAM_KEY: &str = "sk-ant-limits-account";

/// A group with one account on `upstream` and one key for its owner;
/// returns (owner token, group id, member key, key id).
pub(crate) async fn carpool(s: &TestServer, upstream: &str) -> (String, String, String, String) {
    let email = format!(
        "limits-{}@example.com",
        aicarpool_core::id::new_id().to_lowercase()
    );
    let (_, token) = s.register(&email).await;
    let (status, group) = s.post("/api/groups", &token, json!({"name": "team"})).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (status, account) = s
        .post(
            &format!("/api/groups/{group_id}/accounts"),
            &token,
            json!({"name": "main", "platform": "claude_api", "baseUrl": upstream,
                   "credentials": {"apiKey": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let (status, key) = s
        .post(
            &format!("/api/groups/{group_id}/keys"),
            &token,
            json!({"name": "laptop"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        token,
        group_id,
        key["key"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    )
}

async fn message(s: &TestServer, key: &str, model: &str) -> reqwest::Response {
    s.http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .json(&json!({"model": model, "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn limits_set_over_the_api_are_enforced_at_once() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (token, group_id, key, key_id) = carpool(&s, &mock.url).await;

    let (status, body) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            &token,
            json!({"limits": {"perMember": {"concurrency": 1}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("perMember"));

    let (status, _) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            &token,
            json!({"limits": {"requestsPerMinute": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ok = message(&s, &key, "claude-sonnet-4-5").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers()["x-aicarpool-ratelimit-requests-remaining"],
        "1"
    );
    assert_eq!(
        message(&s, &key, "claude-sonnet-4-5").await.status(),
        StatusCode::OK
    );
    let refused = message(&s, &key, "claude-sonnet-4-5").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requestsPerMinute = 2"));

    // Lift the key's limit; a group limit per member takes over at once
    // and counts what the member used before it was set.
    let (status, _) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            &token,
            json!({"limits": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, group) = s
        .patch(
            &format!("/api/groups/{group_id}"),
            &token,
            json!({"limits": {"tokens": {"daily": 100000},
                              "perMember": {"tokens": {"daily": 1200}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["limits"]["perMember"]["tokens"]["daily"], 1200);
    // 337 counted tokens a request, two made already: 674 and 1,011 still
    // fit, 1,348 not.
    assert_eq!(
        message(&s, &key, "claude-sonnet-4-5").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        message(&s, &key, "claude-sonnet-4-5").await.status(),
        StatusCode::OK
    );
    let refused = message(&s, &key, "claude-sonnet-4-5").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = refused.json().await.unwrap();
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("your keys in this group") && m.contains("tokens.daily = 1200"),
        "{m}"
    );
}

#[tokio::test]
async fn reports_flag_unpriced_models_and_export_csv() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (token, group_id, key, key_id) = carpool(&s, &mock.url).await;
    for model in ["claude-sonnet-4-5", "my-private-model", "glm-4.5-flash"] {
        assert_eq!(message(&s, &key, model).await.status(), StatusCode::OK);
    }
    let q = format!("scope=group&id={group_id}&groupBy=model");
    let report = report_with(&s, &token, &q, 3).await;
    assert_eq!(
        report["unpricedModels"],
        json!(["my-private-model"]),
        "{report}"
    );
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(report["totals"]["costUsd"], 0.001845);

    let resp = s
        .http
        .get(format!("{}/api/usage/export.csv?{q}", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&format!("group-{group_id}")));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "bucket,requests,inputTokens,outputTokens,cacheWriteTokens,cacheReadTokens,costUsd,errors,unpriced"
    );
    assert!(
        lines.contains(&"claude-sonnet-4-5,1,25,12,300,50,0.001845,0,false"),
        "{csv}"
    );
    assert!(
        lines.contains(&"my-private-model,1,25,12,300,50,0.000000,0,true"),
        "{csv}"
    );
    assert!(
        lines.contains(&"glm-4.5-flash,1,25,12,300,50,0.000000,0,false"),
        "{csv}"
    );

    // Without groupBy: one line for the whole scope; a key's own report.
    let resp = s
        .http
        .get(format!(
            "{}/api/usage/export.csv?scope=key&id={key_id}",
            s.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let csv = resp.text().await.unwrap();
    assert_eq!(
        csv.lines().nth(1),
        Some("all,3,75,36,900,150,0.001845,0,true")
    );

    // Someone else sees neither the report nor the export.
    let (_, stranger) = s.register("stranger-limits@example.com").await;
    let resp = s
        .http
        .get(format!("{}/api/usage/export.csv?{q}", s.url))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert_ne!(resp.headers()["content-type"], "text/csv; charset=utf-8");
}

/// A member's refused requests show on their row of the group's report,
/// counted by reason (and among the errors), beside the others' rows.
#[tokio::test]
async fn the_group_report_counts_each_members_refusals_by_reason() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let s = spawn().await;
    let (owner, group_id, owner_key, _) = carpool(&s, &mock.url).await;
    let tag = aicarpool_core::id::new_id().to_lowercase();
    let (member_id, member) = s.register(&format!("refused-{tag}@example.com")).await;
    let (status, inv) = s
        .post(
            &format!("/api/groups/{group_id}/invitations"),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    let (status, joined) = s
        .post(
            &format!("/api/invitations/{}/accept", inv["token"].as_str().unwrap()),
            &member,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let (status, key) = s
        .post(
            &format!("/api/groups/{group_id}/keys"),
            &member,
            json!({"name": "cli", "limits": {"requestsPerMinute": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let member_key = key["key"].as_str().unwrap();

    assert_eq!(
        message(&s, member_key, "claude-sonnet-4-5").await.status(),
        StatusCode::OK
    );
    let refused = message(&s, member_key, "claude-sonnet-4-5").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["x-aicarpool-refusal"], "rate-limit");
    assert_eq!(
        message(&s, &owner_key, "claude-sonnet-4-5").await.status(),
        StatusCode::OK
    );

    let q = format!("scope=group&id={group_id}&groupBy=user");
    let report = report_with(&s, &owner, &q, 3).await;
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    let none = json!({"rate-limit": 0, "quota": 0, "budget": 0, "concurrency": 0,
                      "fair-share": 0});
    let mut one = none.clone();
    one["rate-limit"] = json!(1);
    let row = rows
        .iter()
        .find(|r| r["bucket"] == member_id.as_str())
        .expect("the member's row");
    assert_eq!(
        (&row["requests"], &row["errors"], &row["refusals"]),
        (&json!(2), &json!(1), &one),
        "{report}"
    );
    let other = rows
        .iter()
        .find(|r| r["bucket"] != member_id.as_str())
        .expect("the owner's row");
    assert_eq!(other["refusals"], none, "{report}");
    assert_eq!(report["totals"]["refusals"], one, "{report}");
}

/// A server on `config` with a shutdown trigger; returns the server, the
/// trigger and the serve task.
async fn spawn_stoppable(
    config: ServeConfig,
) -> (
    TestServer,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let state = aicarpool_server::build_state(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve_state = state.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        aicarpool_server::serve(serve_state, listener, shutdown)
            .await
            .unwrap();
    });
    let server = TestServer {
        url,
        state,
        http: reqwest::Client::new(),
    };
    (server, stop, task)
}

fn file_config(dir: &tempfile::TempDir) -> ServeConfig {
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.database_url = format!("sqlite://{}", dir.path().join("aicarpool.db").display());
    config
}

/// What the limiter counts for a key, loading it from the store if needed.
async fn counted_cost(state: &AppState, key_id: &str) -> i64 {
    let scope = Scope::Key(key_id.to_owned());
    let usage = state.gateway.limiter().usage(&scope).await.unwrap();
    usage.settled(Window::Total).cost_micro_usd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_loses_nothing_and_resets_nobody() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(&dir);
    let (s, stop, task) = spawn_stoppable(config.clone()).await;
    let (token, _, key, key_id) = carpool(&s, &mock.url).await;
    // Three requests of 1,845 µ$ fit a budget of 5,535 µ$; a fourth not.
    let (status, _) = s
        .patch(
            &format!("/api/keys/{key_id}"),
            &token,
            json!({"limits": {"costUsd": {"total": 0.005535}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(
            message(&s, &key, "claude-sonnet-4-5").await.status(),
            StatusCode::OK
        );
    }
    // SIGTERM: the serve future ends after flushing every queued record.
    stop.send(()).unwrap();
    task.await.unwrap();
    drop(s);

    let (s, stop, task) = spawn_stoppable(config).await;
    let (status, report) = s
        .get(&format!("/api/usage?scope=key&id={key_id}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["totals"]["requests"], 3, "nothing lost: {report}");
    let spent = counted_cost(&s.state, &key_id).await;
    println!("graceful restart: 3 requests before, report {report}, counters {spent} µ$");
    assert_eq!(spent, 5_535);
    assert_eq!(
        report["totals"]["costUsd"], 0.005535,
        "counters and report agree"
    );
    let refused = message(&s, &key, "claude-sonnet-4-5").await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "no reset by restart"
    );
    let v: Value = refused.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("costUsd.total"));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[test]
fn hard_stop_loses_at_most_the_unflushed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(&dir);
    // The upstream and the client live in their own runtime; the server's
    // runtime is torn down without any shutdown, as by SIGKILL.
    let outside = tokio::runtime::Runtime::new().unwrap();
    let mock = outside.block_on(MockUpstream::start(UPSTREAM_KEY)).unwrap();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (s, _stop, _task) = server_rt.block_on(spawn_stoppable(config.clone()));
    let url = s.url.clone();
    let (token, key, key_id) = outside.block_on(async {
        let client = TestServer {
            url: url.clone(),
            state: s.state.clone(),
            http: reqwest::Client::new(),
        };
        let (token, _, key, key_id) = carpool(&client, &mock.url).await;
        (token, key, key_id)
    });
    let (flushed, unflushed) = (20u64, 10u64);
    outside.block_on(async {
        let client = TestServer {
            url: url.clone(),
            state: s.state.clone(),
            http: reqwest::Client::new(),
        };
        for _ in 0..flushed {
            assert_eq!(
                message(&client, &key, "claude-sonnet-4-5").await.status(),
                StatusCode::OK
            );
        }
        // Longer than the writer's 200 ms flush interval: written.
        tokio::time::sleep(Duration::from_millis(600)).await;
        for _ in 0..unflushed {
            assert_eq!(
                message(&client, &key, "claude-sonnet-4-5").await.status(),
                StatusCode::OK
            );
        }
    });
    drop(s);
    server_rt.shutdown_background();
    std::thread::sleep(Duration::from_millis(200));

    outside.block_on(async {
        let (s, stop, task) = spawn_stoppable(config).await;
        let (status, report) = s
            .get(&format!("/api/usage?scope=key&id={key_id}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let kept = report["totals"]["requests"].as_u64().unwrap();
        let lost = flushed + unflushed - kept;
        println!(
            "hard stop: {} requests answered, {kept} recorded, {lost} lost (bound: the last \
             200 ms / 256 records, here {unflushed})",
            flushed + unflushed
        );
        assert!(
            kept >= flushed,
            "records older than a flush interval survive"
        );
        assert!(lost <= unflushed.min(256));
        // Whatever survived, counters are rebuilt from exactly that.
        let spent = counted_cost(&s.state, &key_id).await;
        assert_eq!(spent as u64, kept * 1_845);
        assert_eq!(
            report["totals"]["costUsd"].as_f64().unwrap(),
            spent as f64 / 1e6
        );
        stop.send(()).unwrap();
        task.await.unwrap();
    });
}

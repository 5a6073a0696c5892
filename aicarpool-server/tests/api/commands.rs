//! The operator's commands: run as the binary (`check`, `admin`, `backup`)
//! and a master-key rotation under running servers.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use aicarpool_core::secret::MasterKey;
use aicarpool_server::commands::rotate;
use aicarpool_server::ServeConfig;
use aicarpool_testkit::MockUpstream;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{spawn_with, TestServer, ADMIN_TOKEN};

/// The binary with a fresh SQLite database in `dir` and nothing else set.
fn aicarpool(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aicarpool"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "AICARPOOL_DATABASE_URL",
            format!("sqlite://{}/a.db", dir.display()),
        )
        .env("AICARPOOL_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_admin_and_backup_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (ok, text) = run(aicarpool(d).arg("check"));
    assert!(ok, "{text}");
    assert!(text.contains("ok      database"), "{text}");
    assert!(text.contains("skipped redis"), "{text}");
    // Redis named but not there: the check says so and fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (ok, text) = run(aicarpool(d)
        .arg("check")
        .env("AICARPOOL_REDIS_URL", format!("redis://127.0.0.1:{port}")));
    assert!(!ok, "{text}");
    assert!(text.contains("FAILED  redis"), "{text}");

    let password = "copper kettle marmalade sunrise";
    let (ok, text) = run(aicarpool(d)
        .args([
            "admin",
            "create-user",
            "--email",
            "Ops@Example.com",
            "--system-admin",
        ])
        .env("AICARPOOL_NEW_PASSWORD", password));
    assert!(ok, "{text}");
    assert!(text.contains("created user"), "{text}");
    let (ok, text) = run(aicarpool(d)
        .args(["admin", "create-user", "--email", "weak@example.com"])
        .env("AICARPOOL_NEW_PASSWORD", "password1"));
    assert!(!ok && text.contains("too weak"), "{text}");
    let (ok, text) = run(aicarpool(d)
        .args(["admin", "create-user", "--email", "ops@example.com"])
        .env("AICARPOOL_NEW_PASSWORD", password));
    assert!(!ok && text.contains("exists already"), "{text}");
    let (ok, text) = run(aicarpool(d).args(["admin", "list-users"]));
    assert!(ok, "{text}");
    assert!(
        text.contains("ops@example.com") && text.contains("yes"),
        "{text}"
    );
    assert!(text.contains("1 users"), "{text}");
    let (ok, text) = run(aicarpool(d)
        .args(["admin", "reset-password", "--email", "ops@example.com"])
        .env("AICARPOOL_NEW_PASSWORD", "lantern otter basalt meadow"));
    assert!(ok, "{text}");
    let (ok, text) = run(aicarpool(d)
        .args(["admin", "reset-password", "--email", "nobody@example.com"])
        .env("AICARPOOL_NEW_PASSWORD", "lantern otter basalt meadow"));
    assert!(!ok && text.contains("no user"), "{text}");

    let copy = d.join("copy.db");
    let (ok, text) = run(aicarpool(d).args(["backup", "--to"]).arg(&copy));
    assert!(ok, "{text}");
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the copy holds secrets");
    // The copy is a database of its own with the same users.
    let (ok, text) = run(aicarpool(d)
        .args(["admin", "list-users"])
        .env(
            "AICARPOOL_DATABASE_URL",
            format!("sqlite://{}", copy.display()),
        )
        .env("AICARPOOL_MASTER_KEY_FILE", d.join("a.db.key")));
    assert!(ok && text.contains("ops@example.com"), "{text}");
    let (ok, text) = run(aicarpool(d).args(["backup", "--to"]).arg(&copy));
    assert!(!ok && text.contains("never overwrites"), "{text}");
}

const UPSTREAM_KEY: &str = "sk-ant-rotation";

/// A server on the database file `db` with `key` and `others`.
async fn server(db: &std::path::Path, key: &MasterKey, others: &[&MasterKey]) -> TestServer {
    let mut config = ServeConfig::for_tests(ADMIN_TOKEN);
    config.database_url = format!("sqlite://{}", db.display());
    config.master_key = Some(key.to_base64());
    config.master_key_others = others.iter().map(|k| k.to_base64()).collect();
    spawn_with(config).await
}

async fn ask(s: &TestServer, key: &str) -> StatusCode {
    s.http
        .post(format!("{}/v1/messages", s.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_master_key_rotates_while_the_servers_keep_serving() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let (old, new) = (MasterKey::generate(), MasterKey::generate());

    // Step 1: a server that seals with the old key and accepts the new.
    let a = server(&db, &old, &[&new]).await;
    let (_, group) = a
        .post("/api/groups", ADMIN_TOKEN, json!({"name": "r"}))
        .await;
    let group = group["id"].as_str().unwrap().to_owned();
    let (st, acc) = a
        .post(
            &format!("/api/groups/{group}/accounts"),
            ADMIN_TOKEN,
            json!({"name": "a", "platform": "claude_api", "baseUrl": mock.url,
                   "credentials": {"apiKey": UPSTREAM_KEY}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{acc}");
    let (_, key) = a
        .post(&format!("/api/groups/{group}/keys"), ADMIN_TOKEN, json!({}))
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(ask(&a, &key).await, StatusCode::OK);

    // Step 2: the rotation, while `a` serves.
    let current = aicarpool_core::secret::Sealer::with_others(&old, &[]);
    let done = rotate::rotate(&a.state.store, &current, &new)
        .await
        .unwrap();
    assert_eq!((done.resealed, done.already), (1, 0), "{done:?}");
    assert!(done.unreadable.is_empty());
    a.state.gateway.invalidate_routes();
    assert_eq!(ask(&a, &key).await, StatusCode::OK, "opens the new seal");
    // Again: nothing left to do.
    let again = rotate::rotate(&a.state.store, &current, &new)
        .await
        .unwrap();
    assert_eq!((again.resealed, again.already), (0, 1));

    // Step 3: a server with only the new key serves; one with only the
    // old key cannot open the credential any more.
    let b = server(&db, &new, &[]).await;
    assert_eq!(ask(&b, &key).await, StatusCode::OK);
    let stale = server(&db, &old, &[]).await;
    assert_ne!(ask(&stale, &key).await, StatusCode::OK);
    assert!(!format!("{:?}", a.state.sealer).contains(&new.to_base64()));
}

//! The `aicarpool` binary as a child process, set up through its own
//! management API, as the memory and soak harnesses drive it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The `aicarpool` binary next to the running one (`target/<profile>/`),
/// or `explicit`.
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let exe = match explicit {
        Some(p) => p.to_owned(),
        None => std::env::current_exe()?
            .with_file_name("aicarpool")
            .with_extension(std::env::consts::EXE_EXTENSION),
    };
    ensure!(
        exe.exists(),
        "no server at {} (run `cargo build -p aicarpool-server`, or pass --server)",
        exe.display()
    );
    Ok(exe)
}

/// A running `aicarpool serve`; killed on drop. `Debug` shows no token.
pub struct ServerProcess {
    child: Child,
    pub url: String,
    pub admin_token: String,
    pub http: reqwest::Client,
}

impl std::fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerProcess")
            .field("pid", &self.child.id())
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ServerProcess {
    /// Starts `exe serve` on a free loopback port with `env` (and an admin
    /// token of its own), and waits up to 30 s for `/healthz`.
    pub async fn start(exe: &Path, env: &[(&str, String)]) -> Result<Self> {
        let addr = free_port()?;
        let admin_token = format!("bench-{}", aicarpool_core::id::new_id());
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .env("AICARPOOL_LISTEN", addr.to_string())
            .env("AICARPOOL_ADMIN_TOKEN", &admin_token)
            .env("AICARPOOL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut server = Self {
            child,
            url: format!("http://{addr}"),
            admin_token,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = server
                .http
                .get(format!("{}/healthz", server.url))
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("the server exited: {status}");
            }
            ensure!(
                Instant::now() < deadline,
                "the server did not start in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A JSON call to the management API; an error unless it succeeded.
    pub async fn call(
        &self,
        method: http::Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        ensure!(status.is_success(), "{path}: {status} {body}");
        Ok(body)
    }

    /// Registers an owner and makes a group: the owner's session token and
    /// the group id.
    pub async fn owner_and_group(&self, email: &str, group: &str) -> Result<(String, String)> {
        let registered = self
            .call(
                http::Method::POST,
                None,
                "/api/auth/register",
                Some(json!({"email": email, "name": "Owner",
                            "password": "correct horse battery staple"})),
            )
            .await?;
        let token = registered["token"]
            .as_str()
            .context("no session token")?
            .to_owned();
        let group = self
            .call(
                http::Method::POST,
                Some(&token),
                "/api/groups",
                Some(json!({"name": group})),
            )
            .await?;
        let group = group["id"].as_str().context("no group id")?.to_owned();
        Ok((token, group))
    }

    /// Adds a `claude_api` account on `base_url` to `group`; its id.
    pub async fn add_account(
        &self,
        token: &str,
        group: &str,
        name: &str,
        base_url: &str,
        api_key: &str,
    ) -> Result<String> {
        let account = self
            .call(
                http::Method::POST,
                Some(token),
                &format!("/api/groups/{group}/accounts"),
                Some(
                    json!({"name": name, "platform": "claude_api", "baseUrl": base_url,
                            "credentials": {"apiKey": api_key}}),
                ),
            )
            .await?;
        Ok(account["id"].as_str().context("no account id")?.to_owned())
    }

    /// Binds `accounts` to `group`, in that order of priority.
    pub async fn bind(&self, token: &str, group: &str, accounts: &[String]) -> Result<()> {
        let accounts: Vec<Value> = accounts
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"accountId": id, "priority": i + 1}))
            .collect();
        self.call(
            http::Method::PUT,
            Some(token),
            &format!("/api/groups/{group}/binding"),
            Some(json!({"mode": "dedicated", "accounts": accounts})),
        )
        .await?;
        Ok(())
    }

    /// Makes a member key in `group` with `limits`: the key and its id.
    pub async fn member_key(
        &self,
        token: &str,
        group: &str,
        name: &str,
        limits: Value,
    ) -> Result<(String, String)> {
        let key = self
            .call(
                http::Method::POST,
                Some(token),
                &format!("/api/groups/{group}/keys"),
                Some(json!({"name": name, "limits": limits})),
            )
            .await?;
        Ok((
            key["key"].as_str().context("no member key")?.to_owned(),
            key["id"].as_str().context("no key id")?.to_owned(),
        ))
    }

    /// Resident memory, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        status_field(self.pid(), "VmRSS:").context("no /proc/<pid>/status here")
    }

    /// The high-water mark of resident memory, KiB.
    pub fn hwm_kib(&self) -> Result<u64> {
        status_field(self.pid(), "VmHWM:").context("no /proc/<pid>/status here")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/<pid>/status` in KiB.
pub fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A port free a moment ago on loopback.
pub fn free_port() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

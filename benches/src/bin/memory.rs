//! `aicarpool-memory`: what a burst of large request bodies costs the
//! server in memory, and whether the memory comes back.
//!
//! It starts the release `aicarpool` binary as a child process (its own
//! allocator, its own SQLite file, the body budget as configured), a mock
//! Anthropic upstream in this process that reads each body to the end and
//! answers a small message, and sets up one member key through the
//! management API. Then it sends `--requests` concurrent requests of
//! `--body-mb` MiB each, samples the child's RSS every 10 ms, and keeps
//! sampling while the server idles for `--idle-secs` with the clients'
//! connections closed. It reports the RSS at
//! start, at the peak and after the idle time, the bytes in flight (what
//! the budget let in at once), the peak growth over those bytes, and the
//! bytes buffered per admitted request; the last line is one JSON object.
//!
//! Build the server first: `cargo build --release -p aicarpool-server`
//! (add `--features system-allocator` to measure the system allocator).
//! Loopback only; it stops by itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aicarpool_benches::server::{server_binary, status_field, ServerProcess};
use anyhow::{ensure, Result};
use axum::extract::Request;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use clap::Parser;
use http_body_util::BodyExt as _;
use serde_json::json;
use tokio::time::Instant;

const UPSTREAM_KEY: &str = "sk-ant-api03-memory-bench";
const MIB: usize = 1 << 20;

#[derive(Debug, Parser)]
#[command(name = "aicarpool-memory")]
struct Args {
    /// Concurrent requests in the burst.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Size of each request body, in MiB.
    #[arg(long, default_value_t = 8)]
    body_mb: usize,
    /// The server's budget of buffered request bodies
    /// (`AICARPOOL_MAX_BUFFERED_BODY_MB`).
    #[arg(long, default_value_t = 512)]
    budget_mb: usize,
    /// How long the server idles after the burst before the last reading.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// The `aicarpool` binary; default: next to this one.
    #[arg(long)]
    server: Option<PathBuf>,
    /// What the server was built to allocate with, for the report
    /// (`mimalloc`, or `system` with `--features system-allocator`).
    #[arg(long, default_value = "mimalloc")]
    allocator: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.requests > 0 && args.body_mb > 0, "nothing to send");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let upstream = Sink::start().await?;
    let server = Server::start(&args, &upstream.url).await?;
    let key = server.member_key(&upstream.url).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    // Warm: connections, caches, the usage writer's first flush.
    for _ in 0..5 {
        let status = server.send(&client, &key, small_body()).await?;
        ensure!(status == 200, "a warm-up request got {status}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start_kib = server.rss_kib()?;

    let sampler = Sampler::start(server.pid());
    let body = large_body(args.body_mb * MIB);
    let burst_started = Instant::now();
    let tasks: Vec<_> = (0..args.requests)
        .map(|_| {
            let (client, key, body, url) = (
                client.clone(),
                key.clone(),
                body.clone(),
                server.process.url.clone(),
            );
            tokio::spawn(async move { send(&client, &url, &key, body).await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        *statuses.entry(t.await??).or_default() += 1;
    }
    let burst = burst_started.elapsed();
    let after_kib = server.rss_kib()?;
    // The clients leave, as CLIs do between prompts: their connections
    // (and the buffers the server holds for them) close. The gateway's own
    // pool of upstream connections stays open.
    drop(client);
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_kib = server.rss_kib()?;
    let peak_kib = sampler.stop().max(server.hwm_kib()?);

    let ok = statuses.get(&200).copied().unwrap_or_default();
    ensure!(
        upstream.bodies.load(Ordering::Relaxed) >= ok,
        "the upstream saw fewer bodies than were answered"
    );
    let offered = args.requests * args.body_mb * MIB;
    let in_flight = offered.min(args.budget_mb * MIB);
    let admitted_at_once = (in_flight / (args.body_mb * MIB)).max(1);
    let growth = peak_kib.saturating_sub(start_kib) as f64 * 1024.0;
    let report = json!({
        "mode": "memory",
        "allocator": server.allocator,
        "requests": args.requests,
        "body_mib": args.body_mb,
        "budget_mib": args.budget_mb,
        "statuses": statuses,
        "burst_ms": burst.as_millis() as u64,
        "rss_start_kib": start_kib,
        "rss_peak_kib": peak_kib,
        "rss_after_burst_kib": after_kib,
        "rss_idle_kib": idle_kib,
        "idle_secs": args.idle_secs,
        "in_flight_mib": in_flight / MIB,
        "peak_growth_over_in_flight": round2(growth / in_flight as f64),
        "buffered_per_request_mib": round2(growth / admitted_at_once as f64 / MIB as f64),
        "idle_over_start": round2(idle_kib as f64 / start_kib as f64),
    });
    println!(
        "aicarpool-memory: {} × {} MiB at once, budget {} MiB, allocator {}",
        args.requests, args.body_mb, args.budget_mb, server.allocator
    );
    println!("answers: {statuses:?} in {:.1} s", burst.as_secs_f64());
    println!(
        "RSS start {} MiB, peak {} MiB, after the burst {} MiB, after {} s idle {} MiB",
        start_kib / 1024,
        peak_kib / 1024,
        after_kib / 1024,
        args.idle_secs,
        idle_kib / 1024
    );
    println!(
        "in flight {} MiB: peak growth {:.2}× of it, {:.2} MiB buffered per request; idle {:.2}× start",
        in_flight / MIB,
        report["peak_growth_over_in_flight"].as_f64().unwrap_or_default(),
        report["buffered_per_request_mib"].as_f64().unwrap_or_default(),
        report["idle_over_start"].as_f64().unwrap_or_default(),
    );
    println!("{report}");
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn small_body() -> Bytes {
    Bytes::from(
        json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
               "messages": [{"role": "user", "content": "hi"}]})
        .to_string(),
    )
}

/// A Messages body of `size` bytes: one user turn padded to the size.
fn large_body(size: usize) -> Bytes {
    let head =
        r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":""#;
    let tail = r#""}]}"#;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    body.resize(size.saturating_sub(tail.len()).max(head.len()), b'a');
    body.extend_from_slice(tail.as_bytes());
    Bytes::from(body)
}

async fn send(client: &reqwest::Client, url: &str, key: &str, body: Bytes) -> Result<u16> {
    let resp = client
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    resp.bytes().await?;
    Ok(status)
}

/// A mock Anthropic upstream that reads every body to the end, keeps
/// nothing of it, and answers a small message with usage.
struct Sink {
    url: String,
    bodies: Arc<AtomicUsize>,
}

impl Sink {
    async fn start() -> Result<Self> {
        let bodies = Arc::new(AtomicUsize::new(0));
        let counted = bodies.clone();
        let app = Router::new().route(
            "/v1/messages",
            post(move |req: Request| {
                let counted = counted.clone();
                async move {
                    let mut body = req.into_body();
                    let mut bytes = 0usize;
                    while let Some(Ok(frame)) = body.frame().await {
                        bytes += frame.data_ref().map_or(0, Bytes::len);
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                    Json(json!({
                        "id": "msg_memory", "type": "message", "role": "assistant",
                        "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
                        "content": [{"type": "text", "text": format!("read {bytes} bytes")}],
                        "usage": {"input_tokens": bytes / 4, "output_tokens": 3},
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, bodies })
    }
}

/// The `aicarpool` server as a child process, on its own SQLite file.
struct Server {
    process: ServerProcess,
    allocator: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(args: &Args, upstream: &str) -> Result<Self> {
        let exe = server_binary(args.server.as_deref())?;
        let dir = tempfile::tempdir()?;
        let upstream_host: SocketAddr = upstream.trim_start_matches("http://").parse()?;
        let env = [
            (
                "AICARPOOL_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("memory.db").display()),
            ),
            (
                "AICARPOOL_MASTER_KEY",
                aicarpool_core::secret::MasterKey::generate().to_base64(),
            ),
            ("AICARPOOL_UPSTREAM_ALLOW", upstream_host.ip().to_string()),
            ("AICARPOOL_MAX_BUFFERED_BODY_MB", args.budget_mb.to_string()),
        ];
        let process = ServerProcess::start(&exe, &env).await?;
        Ok(Self {
            process,
            allocator: args.allocator.clone(),
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Registers an owner, adds an account on `upstream`, binds it and
    /// makes a member key.
    async fn member_key(&self, upstream: &str) -> Result<String> {
        let p = &self.process;
        let (token, group) = p.owner_and_group("owner@example.com", "memory").await?;
        let account = p
            .add_account(&token, &group, "sink", upstream, UPSTREAM_KEY)
            .await?;
        p.bind(&token, &group, &[account]).await?;
        Ok(p.member_key(&token, &group, "bench", json!({})).await?.0)
    }

    async fn send(&self, client: &reqwest::Client, key: &str, body: Bytes) -> Result<u16> {
        send(client, &self.process.url, key, body).await
    }

    fn rss_kib(&self) -> Result<u64> {
        self.process.rss_kib()
    }

    fn hwm_kib(&self) -> Result<u64> {
        self.process.hwm_kib()
    }
}

/// The child's RSS, sampled every 10 ms; its maximum.
struct Sampler {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let seen = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kib) = status_field(pid, "VmRSS:") {
                    seen.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

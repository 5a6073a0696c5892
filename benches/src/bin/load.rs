//! `aicarpool-load`: a bounded load run that measures what the gateway adds.
//!
//! One process starts a mock Anthropic upstream and the core gateway
//! mounted in a small axum server (as the real server mounts it), both on
//! 127.0.0.1 port 0. It then sends the same small Messages request, JSON or
//! streaming (`--stream`), straight to the mock (`direct`) and through the
//! gateway (`gateway`), interleaved in one run so both see the same machine
//! state, and times each to the last byte of its answer. It prints
//! p50/p90/p99/max for both, the added latency at p50 and p99 and the
//! ratio, as a table and as one JSON line at the end.
//!
//! `--open-streams N` measures memory instead: a child process per path
//! holds N streams open (the mock stalls them after `message_start`) and
//! reports its RSS growth; the difference per stream is the gateway's.
//!
//! The store is the in-memory one, whose usage insert compares each record
//! with every record before it: fine for a few thousand requests per run,
//! a growing CPU tax on the gateway side beyond ~10,000.
//!
//! Loopback only, and every mode stops by itself.

use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aicarpool_benches::{rss_kib, unpooled_client, Fixture, Replay, UPSTREAM_KEY};
use aicarpool_core::gateway::Gateway;
use aicarpool_testkit::{Behavior, MockUpstream};
use anyhow::{bail, ensure, Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::serve::ListenerExt as _;
use bytes::Bytes;
use clap::Parser;
use http::HeaderMap;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Path {
    Direct,
    Gateway,
    /// A bare pass-through server in front of the mock: the same two
    /// connections per request as the gateway and nothing else (memory
    /// mode, and latency mode with `--relay`).
    Relay,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Gateway => "gateway",
            Path::Relay => "relay",
        }
    }
}

/// Latency (or memory) of the gateway against a direct call to the same
/// mock upstream, measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "aicarpool-load")]
struct Args {
    /// Requests measured on each path (direct and gateway).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests in flight at once, both paths together.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Target requests started per second on each path. Without it,
    /// requests start as fast as the concurrency allows.
    #[arg(long)]
    rate: Option<f64>,
    /// Send streaming (SSE) requests instead of JSON ones.
    #[arg(long)]
    stream: bool,
    /// Unmeasured requests per path first, to open connections and fill
    /// the gateway's caches.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Tokio worker threads for the whole process (client, gateway, mock).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Serve the gateway (and the relay) on a runtime of its own with this
    /// many workers, apart from the client and the mock: `1` measures the
    /// gateway on one core.
    #[arg(long)]
    gateway_threads: Option<usize>,
    /// Also measure the bare pass-through (`relay`) on the gateway's
    /// server: `gateway − relay` is the gateway's work beyond the HTTP hop
    /// any proxy adds.
    #[arg(long)]
    relay: bool,
    /// Open a new connection to the mock for every request, on both paths
    /// (the gateway's upstream client and the direct client). The mock
    /// leaves Nagle on, so a kept-alive connection stalls each streamed
    /// answer ~40 ms on the client's delayed ACK; a fresh one does not.
    #[arg(long)]
    fresh_upstream: bool,
    /// Measure memory instead: hold this many streams open on each path
    /// and report the RSS growth per stream.
    #[arg(long)]
    open_streams: Option<usize>,
    /// Internal: run as the child of `--open-streams` for one path.
    #[arg(long, hide = true, value_enum)]
    child: Option<Path>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.rate.is_none_or(|r| r > 0.0), "--rate must be positive");
    match (args.child, args.open_streams) {
        (Some(path), streams) => {
            let report =
                runtime(args.threads)?.block_on(hold_streams(path, streams.unwrap_or(1000)))?;
            println!("{report}");
            Ok(())
        }
        (None, Some(streams)) => open_streams(&args, streams),
        (None, None) => latency(&args),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

/// Where one path sends its requests, and with which credential.
#[derive(Debug)]
struct Target {
    url: String,
    headers: HeaderMap,
}

/// The mock, the gateway behind its HTTP server, and the clients.
#[derive(Debug)]
struct Rig {
    mock: MockUpstream,
    fixture: Fixture,
    /// For the gateway: always pooled, as a coding client keeps its
    /// connection to the gateway alive.
    client: reqwest::Client,
    /// For the mock: pooled, or fresh per request with `--fresh-upstream`.
    direct_client: reqwest::Client,
    direct: Target,
    gateway: Target,
    relay: Target,
    body: Bytes,
    stream: bool,
}

impl Rig {
    async fn start(
        stream: bool,
        fresh_upstream: bool,
        gateway_threads: Option<usize>,
    ) -> Result<Self> {
        let mock = MockUpstream::start(UPSTREAM_KEY).await?;
        let upstream_client = fresh_upstream.then(unpooled_client);
        let fixture = Fixture::with_upstream_client(&mock.url, upstream_client).await?;
        let replay = Replay::small(stream);
        let plain = Arc::new(PlainRelay {
            client: reqwest::Client::builder().tcp_nodelay(true).build()?,
            upstream: format!("{}{}", mock.url, replay.path),
        });
        let app = axum::Router::new()
            .route("/v1/messages", axum::routing::post(serve))
            .with_state(fixture.gateway.clone())
            .merge(
                axum::Router::new()
                    .route("/relay", axum::routing::post(relay))
                    .with_state(plain),
            );
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let serve = async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            // Nagle off on accepted connections: otherwise each small SSE
            // event written while the previous one is unacknowledged waits
            // for the client's delayed ACK (~40 ms on Linux) on a kept-alive
            // connection.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        };
        match gateway_threads {
            None => {
                tokio::spawn(serve);
            }
            Some(n) => {
                // Its own runtime, alive for the rest of the process.
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n.max(1))
                    .thread_name("gateway-worker")
                    .enable_all()
                    .build()?;
                let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
                rt.spawn(serve);
            }
        }
        // Pooled, Nagle off (as the gateway's own upstream client), and a
        // bound so that a stuck request ends the run instead of hanging it.
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut direct_client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30));
        if fresh_upstream {
            direct_client = direct_client.pool_max_idle_per_host(0);
        }
        let direct_client = direct_client.build()?;
        Ok(Self {
            relay: Target {
                url: format!("http://{addr}/relay"),
                headers: replay.upstream_headers(),
            },
            direct: Target {
                url: format!("{}{}", mock.url, replay.path),
                headers: replay.upstream_headers(),
            },
            gateway: Target {
                url: format!("http://{addr}{}", replay.path),
                headers: replay.member_headers(&fixture.member_key),
            },
            mock,
            fixture,
            client,
            direct_client,
            body: replay.body,
            stream,
        })
    }

    /// A request on `path`, with its credential and the body.
    fn request(&self, path: Path) -> reqwest::RequestBuilder {
        let (client, target) = match path {
            Path::Direct => (&self.direct_client, &self.direct),
            Path::Gateway => (&self.client, &self.gateway),
            Path::Relay => (&self.client, &self.relay),
        };
        client
            .post(&target.url)
            .headers(target.headers.clone())
            .body(self.body.clone())
    }

    /// Sends one request and reads its answer to the end; returns the time
    /// to the first and to the last byte of the body.
    async fn send(&self, path: Path) -> Result<(Duration, Duration, Option<f64>)> {
        let started = Instant::now();
        let mut resp = self.request(path).send().await?;
        let status = resp.status();
        let overhead = resp
            .headers()
            .get("x-aicarpool-overhead-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut first = None;
        // The end of the answer, to check that a stream really finished.
        let mut tail: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            first.get_or_insert_with(|| started.elapsed());
            tail.extend_from_slice(&chunk);
            let excess = tail.len().saturating_sub(64);
            tail.drain(..excess);
        }
        let last = started.elapsed();
        ensure!(
            status.is_success(),
            "{}: status {status}: {}",
            path.name(),
            String::from_utf8_lossy(&tail)
        );
        if self.stream {
            ensure!(
                tail.ends_with(b"data: {\"type\":\"message_stop\"}\n\n"),
                "{}: the stream did not end with message_stop",
                path.name()
            );
        }
        Ok((first.unwrap_or(last), last, overhead))
    }
}

/// The gateway as the server mounts it.
async fn serve(State(gateway): State<Gateway>, req: Request) -> Response {
    gateway.serve(req).await.map(Body::new)
}

/// The baseline of `--open-streams`: a pass-through with no limits,
/// routing, tap or accounting.
#[derive(Debug)]
struct PlainRelay {
    client: reqwest::Client,
    upstream: String,
}

/// Forwards the request to the mock and streams its answer back as it
/// comes.
async fn relay(State(plain): State<Arc<PlainRelay>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut headers = parts.headers;
    headers.remove(http::header::HOST);
    match plain
        .client
        .post(&plain.upstream)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(upstream) => {
            let status = upstream.status();
            let content_type = upstream.headers().get(http::header::CONTENT_TYPE).cloned();
            let mut resp = Response::new(Body::from_stream(upstream.bytes_stream()));
            *resp.status_mut() = status;
            if let Some(ct) = content_type {
                resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
            }
            resp
        }
        Err(_) => http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// One timed request.
#[derive(Debug)]
struct Sample {
    path: Path,
    first_byte: Duration,
    last_byte: Duration,
    /// What the gateway says it added (`x-aicarpool-overhead-ms`).
    overhead_ms: Option<f64>,
}

/// What a phase of the run saw.
#[derive(Debug, Default)]
struct Phase {
    samples: Vec<Sample>,
    errors: [usize; 3],
    first_error: Option<String>,
    elapsed: Duration,
}

/// Sends `per_path` requests on each path, alternating, `concurrency` at a
/// time, paced at `rate` starts per second per path when given.
async fn run_phase(
    rig: &Arc<Rig>,
    paths: &'static [Path],
    per_path: usize,
    concurrency: usize,
    rate: Option<f64>,
) -> Phase {
    let total = per_path * paths.len();
    let n = paths.len() as f64;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (rig, next) = (rig.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut phase = Phase::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if let Some(rate) = rate {
                    // All paths together start n × rate requests a second.
                    let due = t0 + Duration::from_secs_f64(i as f64 / (n * rate));
                    tokio::time::sleep_until(due).await;
                }
                // Alternate so no path runs on a warmer machine.
                let path = paths[i % paths.len()];
                match rig.send(path).await {
                    Ok((first_byte, last_byte, overhead_ms)) => phase.samples.push(Sample {
                        path,
                        first_byte,
                        last_byte,
                        overhead_ms,
                    }),
                    Err(e) => {
                        phase.errors[path as usize] += 1;
                        phase.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            phase
        }));
    }
    let mut all = Phase::default();
    for w in workers {
        match w.await {
            Ok(p) => {
                all.samples.extend(p.samples);
                for (all, p) in all.errors.iter_mut().zip(p.errors) {
                    *all += p;
                }
                if all.first_error.is_none() {
                    all.first_error = p.first_error;
                }
            }
            Err(e) => {
                all.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    all.elapsed = t0.elapsed();
    all
}

/// Percentiles of one path, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    ok: usize,
    errors: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    first_p50: f64,
    first_p99: f64,
    rps: f64,
    /// The gateway's own account of its time (its overhead header).
    own_p50: f64,
    own_p99: f64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn summarize(phase: &Phase, path: Path) -> Summary {
    let mut last: Vec<Duration> = phase
        .samples
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.last_byte)
        .collect();
    let mut first: Vec<Duration> = phase
        .samples
        .iter()
        .filter(|s| s.path == path)
        .map(|s| s.first_byte)
        .collect();
    last.sort_unstable();
    first.sort_unstable();
    let mut own: Vec<Duration> = phase
        .samples
        .iter()
        .filter(|s| s.path == path)
        .filter_map(|s| s.overhead_ms)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect();
    own.sort_unstable();
    Summary {
        own_p50: percentile(&own, 0.50),
        own_p99: percentile(&own, 0.99),
        ok: last.len(),
        errors: phase.errors[path as usize],
        p50: percentile(&last, 0.50),
        p90: percentile(&last, 0.90),
        p99: percentile(&last, 0.99),
        max: percentile(&last, 1.0),
        first_p50: percentile(&first, 0.50),
        first_p99: percentile(&first, 0.99),
        rps: last.len() as f64 / phase.elapsed.as_secs_f64().max(1e-9),
    }
}

fn summary_json(s: &Summary) -> Value {
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    json!({
        "ok": s.ok,
        "errors": s.errors,
        "p50_ms": r(s.p50),
        "p90_ms": r(s.p90),
        "p99_ms": r(s.p99),
        "max_ms": r(s.max),
        "first_byte_p50_ms": r(s.first_p50),
        "first_byte_p99_ms": r(s.first_p99),
        "req_per_s": s.rps.round(),
        "own_overhead_p50_ms": if s.own_p50.is_nan() { Value::Null } else { json!(r(s.own_p50)) },
        "own_overhead_p99_ms": if s.own_p99.is_nan() { Value::Null } else { json!(r(s.own_p99)) },
    })
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn latency(args: &Args) -> Result<()> {
    let rss_start = rss_kib();
    let rt = runtime(args.threads)?;
    let (direct, gateway, relay, phase, usage, rss_warm) = rt.block_on(async {
        let rig =
            Arc::new(Rig::start(args.stream, args.fresh_upstream, args.gateway_threads).await?);
        let paths: &'static [Path] = if args.relay {
            &[Path::Direct, Path::Gateway, Path::Relay]
        } else {
            &[Path::Direct, Path::Gateway]
        };
        let warm = run_phase(&rig, paths, args.warmup, args.concurrency, None).await;
        if let Some(e) = warm.first_error {
            bail!("warm-up failed: {e}");
        }
        let rss_warm = rss_kib();
        let phase = run_phase(&rig, paths, args.requests, args.concurrency, args.rate).await;
        // Settle every stream and write the queued usage before counting.
        rig.fixture.gateway.shutdown().await;
        let usage = rig.fixture.store.usage_records().len();
        let direct = summarize(&phase, Path::Direct);
        let gateway = summarize(&phase, Path::Gateway);
        let relay = args.relay.then(|| summarize(&phase, Path::Relay));
        Ok((direct, gateway, relay, phase, usage, rss_warm))
    })?;
    let rss_end = rss_kib();

    let kind = if args.stream { "streaming" } else { "JSON" };
    let pace = args
        .rate
        .map_or_else(|| "unpaced".into(), |r| format!("{r} req/s per path"));
    println!(
        "aicarpool-load: {} {kind} requests per path, concurrency {}, {pace}, {} threads{}{}",
        args.requests,
        args.concurrency,
        args.threads,
        args.gateway_threads
            .map_or_else(String::new, |n| format!(" + {n} for the gateway")),
        if args.fresh_upstream {
            ", fresh upstream connections"
        } else {
            ""
        }
    );
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>15} {:>7} {:>8}",
        "path", "p50 ms", "p90 ms", "p99 ms", "max ms", "1st byte p50", "errors", "req/s"
    );
    let rows = [
        ("direct", Some(&direct)),
        ("gateway", Some(&gateway)),
        ("relay", relay.as_ref()),
    ];
    for (name, s) in rows.iter().filter_map(|(n, s)| s.map(|s| (n, s))) {
        println!(
            "{name:<8} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>15.3} {:>7} {:>8.0}",
            s.p50, s.p90, s.p99, s.max, s.first_p50, s.errors, s.rps
        );
    }
    let (added_p50, added_p99) = (gateway.p50 - direct.p50, gateway.p99 - direct.p99);
    let (ratio_p50, ratio_p99) = (gateway.p50 / direct.p50, gateway.p99 / direct.p99);
    println!(
        "{:<8} {:>+9.3} {:>9} {:>+9.3}",
        "added", added_p50, "", added_p99
    );
    println!(
        "{:<8} {:>8.2}x {:>9} {:>8.2}x",
        "ratio", ratio_p50, "", ratio_p99
    );
    if let Some(relay) = &relay {
        println!(
            "{:<8} {:>+9.3} {:>9} {:>+9.3}   (gateway − relay: beyond the HTTP hop)",
            "beyond",
            gateway.p50 - relay.p50,
            "",
            gateway.p99 - relay.p99
        );
    }
    println!(
        "{:<8} {:>9.3} {:>9} {:>9.3}   (the gateway's x-aicarpool-overhead-ms)",
        "own", gateway.own_p50, "", gateway.own_p99
    );
    if let Some(e) = &phase.first_error {
        println!("first error: {e}");
    }
    if let Some(rate) = args.rate.filter(|r| direct.rps.min(gateway.rps) < 0.95 * r) {
        println!(
            "note: below the {rate} req/s target: {} requests in flight cannot sustain it at these latencies; raise --concurrency",
            args.concurrency
        );
    }
    if args.stream && !args.fresh_upstream && direct.p50 > 30.0 {
        println!(
            "note: direct streams take ~40 ms: the mock's kept-alive connections stall on delayed ACKs (Nagle on); try --fresh-upstream"
        );
    }
    println!(
        "RSS: {} at start, {} after warm-up, {} at the end; usage records settled: {usage}",
        mib(rss_start),
        mib(rss_warm),
        mib(rss_end)
    );
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    let line = json!({
        "mode": "latency",
        "stream": args.stream,
        "requests_per_path": args.requests,
        "concurrency": args.concurrency,
        "rate_per_path": args.rate,
        "threads": args.threads,
        "gateway_threads": args.gateway_threads,
        "fresh_upstream": args.fresh_upstream,
        "direct": summary_json(&direct),
        "gateway": summary_json(&gateway),
        "relay": relay.as_ref().map(summary_json),
        "added_p50_ms": r(added_p50),
        "added_p99_ms": r(added_p99),
        "ratio_p50": r(ratio_p50),
        "ratio_p99": r(ratio_p99),
        "usage_records": usage,
        "rss_start_kib": rss_start,
        "rss_end_kib": rss_end,
    });
    println!("{line}");
    let failed = direct.errors + gateway.errors + relay.map_or(0, |r| r.errors);
    ensure!(failed == 0, "{failed} requests failed");
    Ok(())
}

/// Runs one child per path (a fresh process each, so one path's freed
/// memory cannot hide the other's growth) and compares their RSS growth.
fn open_streams(args: &Args, streams: usize) -> Result<()> {
    ensure!(streams > 0, "--open-streams must be at least 1");
    let exe = std::env::current_exe()?;
    let mut reports = Vec::new();
    for path in [Path::Direct, Path::Relay, Path::Gateway] {
        let out = Command::new(&exe)
            .args(["--open-streams", &streams.to_string()])
            .args(["--threads", &args.threads.to_string()])
            .args(["--child", path.name()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("starting the {} child", path.name()))?;
        ensure!(
            out.status.success(),
            "the {} child failed: {}",
            path.name(),
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let report: Value = serde_json::from_str(line)
            .with_context(|| format!("reading the {} child's report: {line}", path.name()))?;
        reports.push(report);
    }
    let per_stream = |r: &Value| r["per_stream_kib"].as_f64().unwrap_or(f64::NAN);
    let (direct, relay, gateway) = (
        per_stream(&reports[0]),
        per_stream(&reports[1]),
        per_stream(&reports[2]),
    );
    println!("aicarpool-load: {streams} streams held open per path");
    println!(
        "{:<8} {:>14} {:>14} {:>16}",
        "path", "RSS before", "RSS held", "KiB per stream"
    );
    for r in &reports {
        println!(
            "{:<8} {:>10} KiB {:>10} KiB {:>16.1}",
            r["path"].as_str().unwrap_or("?"),
            r["rss_before_kib"].as_u64().unwrap_or_default(),
            r["rss_held_kib"].as_u64().unwrap_or_default(),
            per_stream(r)
        );
    }
    println!(
        "gateway's share: {:.1} KiB per open stream (gateway − direct)",
        gateway - direct
    );
    println!(
        "beyond its two connections: {:.1} KiB per open stream (gateway − relay)",
        gateway - relay
    );
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let line = json!({
        "mode": "open_streams",
        "streams": streams,
        "direct": reports[0],
        "relay": reports[1],
        "gateway": reports[2],
        "gateway_kib_per_stream": round(gateway - direct),
        "beyond_connections_kib_per_stream": round(gateway - relay),
    });
    println!("{line}");
    std::io::stdout().flush()?;
    Ok(())
}

/// The child of `--open-streams`: holds `n` streams open on `path`, reads
/// RSS, lets them finish, and prints one JSON line.
async fn hold_streams(path: Path, n: usize) -> Result<Value> {
    let rig = Arc::new(Rig::start(true, false, None).await?);
    // Both children set up and warm the same things, so their baselines
    // match and only the held streams differ.
    for _ in 0..20 {
        rig.send(Path::Direct).await?;
        rig.send(Path::Relay).await?;
        rig.send(Path::Gateway).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib().context("no /proc/self/status here")?;
    let finished_before = rig.mock.completed_streams();

    rig.mock.push(std::iter::repeat_n(Behavior::Gated, n));
    // Opening a few at a time stays inside the listeners' accept backlog.
    let opening = Arc::new(Semaphore::new(64));
    let (opened_tx, mut opened_rx) = mpsc::channel::<()>(n);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (rig, opening, opened_tx) = (rig.clone(), opening.clone(), opened_tx.clone());
        tasks.push(tokio::spawn(async move {
            let permit = opening.acquire_owned().await?;
            let mut resp = rig.request(path).send().await?;
            ensure!(resp.status().is_success(), "status {}", resp.status());
            // `message_start` arrived: the stream is open end to end.
            resp.chunk().await?;
            drop(permit);
            let _ = opened_tx.send(()).await;
            while resp.chunk().await?.is_some() {}
            anyhow::Ok(())
        }));
    }
    drop(opened_tx);
    let all_open = async {
        for _ in 0..n {
            opened_rx.recv().await.context("a stream failed to open")?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), all_open)
        .await
        .context("streams did not open within 60 s")??;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = rss_kib().context("no /proc/self/status here")?;

    // Release until every stream finished: a stream that had not reached
    // its gate yet would miss a single release.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.mock.completed_streams() < finished_before + n && Instant::now() < deadline {
        rig.mock.release();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.await??;
    }
    rig.fixture.gateway.shutdown().await;
    Ok(json!({
        "path": path.name(),
        "streams": n,
        "rss_before_kib": before,
        "rss_held_kib": held,
        "per_stream_kib": ((held.saturating_sub(before)) as f64 / n as f64 * 10.0).round() / 10.0,
    }))
}

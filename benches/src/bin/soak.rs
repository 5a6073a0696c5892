//! `aicarpool-soak`: two gateway instances on one PostgreSQL and one Redis
//! under mixed load, while their upstream, their database and their Redis
//! fail, for a set time; then it tells what clients saw and what was kept.
//!
//! It starts two `aicarpool serve` children (built next to this binary)
//! sharing a fresh PostgreSQL schema and a fresh Redis key prefix, both
//! reached through an [`OutageRelay`]. One group has two accounts: a
//! faulty mock upstream first and a healthy one second. The load mixes
//! streamed and whole Messages requests on both instances, and a key with
//! a token quota that runs out during the run. Every second the faulty
//! upstream is told its next answer: a stall before or after its headers,
//! a 429 with `retry-after`, a 529, a 500, a gzip or brotli answer, or a
//! reset mid-stream. At 35 % of the run Redis is cut off (its connections
//! reset, its keys emptied, as a restart of a Redis that keeps nothing
//! does), and at 65 % PostgreSQL.
//!
//! It reports:
//! - requests sent and answered, by outcome;
//! - client-visible failures while a healthy account existed (goal 0);
//!   resets after an answer had started and refusals by the member's own
//!   limits are counted apart;
//! - usage records kept against requests sent (goal equal);
//! - the quota's overshoot, against one request's tokens (goal ≤ one);
//! - each instance's RSS at every sample (goal flat after warm-up, ±10 %).
//!
//! With `--check` it exits non-zero when a goal on failures or records is
//! missed. Loopback only; it stops by itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicarpool_benches::outage::OutageRelay;
use aicarpool_benches::server::{server_binary, ServerProcess};
use aicarpool_testkit::{Behavior, Encoding, MockUpstream};
use anyhow::{ensure, Context, Result};
use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const UPSTREAM_KEY: &str = "sk-ant-api03-soak";
/// Conversations the load keeps going, as a team's members do: each one's
/// first message, and so its sticky session, recurs. (A new conversation
/// per request would grow the router's sticky-session table, bounded by
/// its one-hour idle expiry and 200,000 entries, for the whole first hour.)
const CONVERSATIONS: u64 = 64;
/// Tokens the quota key may spend: about a hundred answers of the mock.
const QUOTA_TOKENS: u64 = 33_700;

#[derive(Debug, Parser)]
#[command(name = "aicarpool-soak")]
struct Args {
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 120)]
    duration_secs: u64,
    /// Requests started per second, both instances together.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 60)]
    sample_secs: u64,
    /// How long each outage (Redis, PostgreSQL) lasts, in seconds.
    #[arg(long, default_value_t = 8)]
    outage_secs: u64,
    /// PostgreSQL the instances share (a schema of its own is made).
    #[arg(
        long,
        env = "AICARPOOL_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// Redis the instances share (under a key prefix of their own).
    #[arg(
        long,
        env = "AICARPOOL_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// The `aicarpool` binary; default: next to this one.
    #[arg(long)]
    server: Option<PathBuf>,
    /// Exit non-zero when a client saw a failure a healthy account could
    /// have spared it, or a usage record is missing.
    #[arg(long)]
    check: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.duration_secs > 0 && args.rate > 0.0, "nothing to run");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// What one answer was, as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// A complete answer.
    Ok,
    /// The member's own limit refused it (`x-aicarpool-refusal`).
    RefusedByLimit,
    /// 503 while Redis was cut off: limits cannot be checked, so limited
    /// keys are refused (by design; see the README).
    LimiterDown,
    /// A stream that had started, then ended with an error event when its
    /// upstream reset: nothing could spare the client that.
    BrokeMidStream,
    /// Anything else: a failure while a healthy account existed.
    Failed,
}

impl Seen {
    fn name(self) -> &'static str {
        match self {
            Seen::Ok => "ok",
            Seen::RefusedByLimit => "refused_by_limit",
            Seen::LimiterDown => "limiter_down",
            Seen::BrokeMidStream => "broke_mid_stream",
            Seen::Failed => "failed",
        }
    }
}

struct Instance {
    process: ServerProcess,
    rss: Mutex<Vec<u64>>,
}

struct Load {
    client: reqwest::Client,
    instances: [Arc<Instance>; 2],
    free_key: String,
    quota_key: String,
    sent: AtomicU64,
    seen: Mutex<BTreeMap<Seen, u64>>,
    failures: Mutex<Vec<String>>,
}

async fn run(args: Args) -> Result<()> {
    let run_id = aicarpool_core::id::new_id().to_lowercase();
    let run_id: String = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let postgres = reqwest::Url::parse(&args.postgres_url).context("the PostgreSQL URL")?;
    let redis = reqwest::Url::parse(&args.redis_url).context("the Redis URL")?;
    let pg_relay = OutageRelay::start(socket_of(&postgres, 5432)?).await?;
    let redis_target = socket_of(&redis, 6379)?;
    let redis_relay = OutageRelay::start(redis_target).await?;
    let redis_prefix = format!("aicp-soak-{run_id}:");

    let faulty = MockUpstream::start(UPSTREAM_KEY).await?;
    let healthy = MockUpstream::start(UPSTREAM_KEY).await?;
    let exe = server_binary(args.server.as_deref())?;
    let env = vec![
        ("AICARPOOL_DATABASE_URL", through(&postgres, pg_relay.addr)?),
        ("AICARPOOL_DATABASE_SCHEMA", format!("soak_{run_id}")),
        ("AICARPOOL_REDIS_URL", through(&redis, redis_relay.addr)?),
        ("AICARPOOL_REDIS_PREFIX", redis_prefix.clone()),
        (
            "AICARPOOL_MASTER_KEY",
            aicarpool_core::secret::MasterKey::generate().to_base64(),
        ),
        ("AICARPOOL_UPSTREAM_ALLOW", "127.0.0.1".to_owned()),
        // The outages make every instance warn at each retry.
        ("AICARPOOL_LOG", "error".to_owned()),
        // A stall costs a few seconds, not the production minute.
        ("AICARPOOL_FIRST_BYTE_TIMEOUT_MS", "3000".to_owned()),
        ("AICARPOOL_STREAM_FIRST_BYTE_TIMEOUT_MS", "2000".to_owned()),
        ("AICARPOOL_IDLE_TIMEOUT_MS", "5000".to_owned()),
    ];
    // The first instance makes the schema; the second finds it.
    let first = ServerProcess::start(&exe, &env).await?;
    let second = ServerProcess::start(&exe, &env).await?;
    let (token, group) = first.owner_and_group("owner@soak.example", "soak").await?;
    let faulty_id = first
        .add_account(&token, &group, "faulty", &faulty.url, UPSTREAM_KEY)
        .await?;
    let healthy_id = first
        .add_account(&token, &group, "healthy", &healthy.url, UPSTREAM_KEY)
        .await?;
    first.bind(&token, &group, &[faulty_id, healthy_id]).await?;
    let (free_key, _) = first.member_key(&token, &group, "free", json!({})).await?;
    let (quota_key, quota_key_id) = first
        .member_key(
            &token,
            &group,
            "quota",
            json!({"tokens": {"total": QUOTA_TOKENS}}),
        )
        .await?;

    let load = Arc::new(Load {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        instances: [first, second].map(|process| {
            Arc::new(Instance {
                process,
                rss: Mutex::default(),
            })
        }),
        free_key,
        quota_key,
        sent: AtomicU64::new(0),
        seen: Mutex::default(),
        failures: Mutex::default(),
    });
    println!(
        "aicarpool-soak: {} s at {} req/s over 2 instances, outages of {} s (run {run_id})",
        args.duration_secs, args.rate, args.outage_secs
    );

    let duration = Duration::from_secs(args.duration_secs);
    let started = Instant::now();
    let ends = started + duration;
    let outage = Duration::from_secs(args.outage_secs);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(sample_rss(
        load.clone(),
        Duration::from_secs(args.sample_secs.max(1)),
        ends,
    ));
    tasks.spawn(faults(faulty.clone(), ends));
    tasks.spawn({
        let (relay, prefix) = (redis_relay.clone(), redis_prefix.clone());
        async move {
            tokio::time::sleep_until(started + duration.mul_f64(0.35)).await;
            println!(
                "{:>5.0} s: Redis cut off for {} s",
                started.elapsed().as_secs_f64(),
                outage.as_secs()
            );
            let cut = relay.outage(outage);
            let emptied = forget_keys(redis_target, &prefix);
            let (_, emptied) = tokio::join!(cut, emptied);
            if let Err(e) = emptied {
                eprintln!("emptying the soak's Redis keys failed: {e:#}");
            }
        }
    });
    tasks.spawn({
        let relay = pg_relay.clone();
        async move {
            tokio::time::sleep_until(started + duration.mul_f64(0.65)).await;
            println!(
                "{:>5.0} s: PostgreSQL cut off for {} s",
                started.elapsed().as_secs_f64(),
                outage.as_secs()
            );
            relay.outage(outage).await;
        }
    });

    let mut requests = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    while Instant::now() < ends {
        tick.tick().await;
        let load = load.clone();
        requests.spawn(async move { load.one(n).await });
        n += 1;
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
    while tasks.join_next().await.is_some() {}

    let sent = load.sent.load(Ordering::SeqCst);
    let (recorded, quota_spent) = settled_usage(
        &load.instances[0].process,
        &token,
        &group,
        &quota_key_id,
        sent,
    )
    .await?;
    report(&args, &load, sent, recorded, quota_spent)
}

impl Load {
    /// Sends request `n`: streamed or whole, on one instance or the other,
    /// one in ten on the quota key.
    async fn one(&self, n: u64) {
        let instance = &self.instances[(n % 2) as usize];
        let stream = n % 4 < 2;
        let quota = n % 10 == 9;
        let key = if quota {
            &self.quota_key
        } else {
            &self.free_key
        };
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                          "messages": [{"role": "user", "content": format!("soak conversation {}", n % CONVERSATIONS)}]});
        self.sent.fetch_add(1, Ordering::SeqCst);
        let sent = self
            .client
            .post(format!("{}/v1/messages", instance.process.url))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await;
        let (seen, detail) = match sent {
            Err(e) => (Seen::Failed, format!("no answer: {e}")),
            Ok(resp) => self.classify(resp, stream, quota).await,
        };
        *self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(seen)
            .or_default() += 1;
        if seen == Seen::Failed {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if failures.len() < 20 {
                failures.push(detail);
            }
        }
    }

    async fn classify(&self, resp: reqwest::Response, stream: bool, quota: bool) -> (Seen, String) {
        let status = resp.status().as_u16();
        let refusal = resp.headers().contains_key("x-aicarpool-refusal");
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return (Seen::Failed, format!("{status}, body broke: {e}")),
        };
        let complete = if stream {
            text.contains("event: message_stop")
        } else {
            text.contains("\"stop_reason\"")
        };
        let seen = match status {
            200 if complete => Seen::Ok,
            200 if stream
                && text.starts_with("event: message_start")
                && text.contains("event: error") =>
            {
                Seen::BrokeMidStream
            }
            429 if refusal => Seen::RefusedByLimit,
            // Until the instance has its Redis connection back, which may
            // take a moment past the outage's end.
            503 if quota && text.contains("limits cannot be checked") => Seen::LimiterDown,
            _ => Seen::Failed,
        };
        let head: String = text.chars().take(200).collect();
        (seen, format!("{status}: {head}"))
    }
}

/// Tells the faulty upstream its next answer, once a second, in turn.
async fn faults(upstream: MockUpstream, ends: Instant) {
    let faults = [
        Behavior::StallBeforeHeaders,
        Behavior::RateLimited {
            retry_after: Some(1),
            unified_reset: None,
        },
        Behavior::Compressed(Encoding::Gzip),
        Behavior::StallAfterHeaders,
        Behavior::Overloaded,
        Behavior::DropMidStream,
        Behavior::ServerError,
        Behavior::Compressed(Encoding::Brotli),
    ];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for fault in faults.iter().cycle() {
        tick.tick().await;
        if Instant::now() >= ends {
            return;
        }
        upstream.push([fault.clone()]);
    }
}

/// Samples each instance's RSS until `ends`, and once more at the end.
async fn sample_rss(load: Arc<Load>, every: Duration, ends: Instant) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for instance in &load.instances {
            if let Ok(kib) = instance.process.rss_kib() {
                instance
                    .rss
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(kib);
            }
        }
        if Instant::now() >= ends {
            return;
        }
    }
}

/// Deletes the run's keys, as a restart of a Redis that keeps nothing on
/// disk would, with one `EVAL` over a plain connection.
async fn forget_keys(redis: SocketAddr, prefix: &str) -> Result<()> {
    let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n";
    let pattern = format!("{prefix}*");
    let parts = ["EVAL", script, "0", pattern.as_str()];
    let mut command = format!("*{}\r\n", parts.len());
    for p in parts {
        command.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    let mut conn = tokio::net::TcpStream::connect(redis).await?;
    conn.write_all(command.as_bytes()).await?;
    let mut reply = [0u8; 64];
    let n = conn.read(&mut reply).await?;
    let reply = String::from_utf8_lossy(&reply[..n]);
    ensure!(reply.starts_with(':'), "Redis answered {reply}");
    Ok(())
}

/// Waits (up to 60 s) until the usage records of the group count `sent`,
/// as the usage writers retry what the outage held back; the count and the
/// quota key's counted tokens.
async fn settled_usage(
    server: &ServerProcess,
    token: &str,
    group: &str,
    quota_key: &str,
    sent: u64,
) -> Result<(u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let recorded = loop {
        let usage = server
            .call(
                http::Method::GET,
                Some(token),
                &format!("/api/usage?scope=group&id={group}"),
                None,
            )
            .await;
        let recorded = usage
            .ok()
            .and_then(|u| u["totals"]["requests"].as_u64())
            .unwrap_or_default();
        if recorded >= sent || Instant::now() >= deadline {
            break recorded;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let quota = server
        .call(
            http::Method::GET,
            Some(token),
            &format!("/api/usage?scope=key&id={quota_key}"),
            None,
        )
        .await?;
    let t = &quota["totals"];
    let tokens = ["inputTokens", "outputTokens", "cacheWriteTokens"]
        .iter()
        .map(|f| t[f].as_u64().unwrap_or_default())
        .sum();
    Ok((recorded, tokens))
}

fn report(args: &Args, load: &Load, sent: u64, recorded: u64, quota_spent: u64) -> Result<()> {
    let seen = load.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failed = seen.get(&Seen::Failed).copied().unwrap_or_default();
    // One answer of the mock, as the quota counts it: 25 input, 12 output,
    // 300 written to the cache.
    let per_request = 337u64;
    let overshoot = quota_spent.saturating_sub(QUOTA_TOKENS);
    let rss: Vec<Vec<u64>> = load
        .instances
        .iter()
        .map(|i| i.rss.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .collect();
    // After warm-up: from the second sample on.
    let drift: Vec<f64> = rss
        .iter()
        .map(|s| match (s.get(1), s.last()) {
            (Some(&a), Some(&b)) if a > 0 => ((b as f64 / a as f64 - 1.0) * 1000.0).round() / 10.0,
            _ => 0.0,
        })
        .collect();
    println!("requests sent {sent}, usage records {recorded} (goal: equal)");
    for (s, n) in &seen {
        println!("  {:<18} {n}", s.name());
    }
    println!("client-visible failures while a healthy account existed: {failed} (goal 0)");
    for f in load
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("    {f}");
    }
    println!(
        "quota: {quota_spent} of {QUOTA_TOKENS} tokens, overshoot {overshoot} = {:.2} requests' worth (goal ≤ 1)",
        overshoot as f64 / per_request as f64
    );
    for (i, s) in rss.iter().enumerate() {
        let mib: Vec<String> = s
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect();
        println!(
            "instance {} RSS MiB every {} s: {} (after warm-up {:+.1} %, goal within ±10 %)",
            i + 1,
            args.sample_secs,
            mib.join(", "),
            drift[i]
        );
    }
    let line = json!({
        "mode": "soak",
        "duration_secs": args.duration_secs,
        "rate": args.rate,
        "sent": sent,
        "recorded": recorded,
        "seen": seen.iter().map(|(s, n)| (s.name(), *n)).collect::<BTreeMap<_, _>>(),
        "failed": failed,
        "quota_tokens": QUOTA_TOKENS,
        "quota_spent": quota_spent,
        "quota_overshoot_requests": overshoot as f64 / per_request as f64,
        "rss_kib": rss,
        "rss_drift_pct": drift,
    });
    println!("{line}");
    if args.check {
        ensure!(failed == 0, "{failed} client-visible failures");
        ensure!(
            recorded == sent,
            "{recorded} usage records for {sent} requests"
        );
    }
    Ok(())
}

/// The socket a service URL names.
fn socket_of(url: &reqwest::Url, default_port: u16) -> Result<SocketAddr> {
    let host = url.host_str().context("the URL has no host")?;
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    Ok(SocketAddr::new(
        host.parse().context("a loopback address")?,
        url.port().unwrap_or(default_port),
    ))
}

/// `url` pointed at `relay` instead.
fn through(url: &reqwest::Url, relay: SocketAddr) -> Result<String> {
    let mut url = url.clone();
    url.set_ip_host(relay.ip())
        .map_err(|()| anyhow::anyhow!("cannot point {url} at the relay"))?;
    url.set_port(Some(relay.port()))
        .map_err(|()| anyhow::anyhow!("cannot point {url} at the relay"))?;
    Ok(url.to_string())
}

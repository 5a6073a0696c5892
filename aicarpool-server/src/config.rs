//! Server configuration: flags, `AICARPOOL_*` environment variables, defaults.

use aicarpool_core::gateway::GatewayConfig;
use aicarpool_core::outbound::OutboundGuard;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

mod claude_oauth;
mod sign_in;
mod timeouts;

pub use claude_oauth::ClaudeOAuthArgs;
pub use sign_in::SignInArgs;
pub use timeouts::TimeoutArgs;

/// Everything `aicarpool serve` can be told.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "AICARPOOL_LISTEN", default_value = "127.0.0.1:4000")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://path.db` (one instance) or
    /// `postgres://user:pass@host/db` (several instances sharing one database).
    #[arg(
        long = "database",
        env = "AICARPOOL_DATABASE_URL",
        default_value = "sqlite://aicarpool.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// PostgreSQL schema to keep AiCarpool's tables in (created if
    /// missing); default: the connection's search path (`public`).
    #[arg(long, env = "AICARPOOL_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,

    /// Redis URL (`redis://host:6379`) for member-limit counters shared by
    /// several instances. Without it, counters live in this process.
    #[arg(long = "redis", env = "AICARPOOL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of this deployment's keys and channel in Redis (default `aicp:`).
    #[arg(long, env = "AICARPOOL_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,

    /// URL members use to reach this server (for key set-up guides and
    /// invitation links). Defaults to `http://<listen>`.
    #[arg(long, env = "AICARPOOL_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Bearer token accepted as the system administrator (automation).
    #[arg(long, env = "AICARPOOL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// System administrator created on an empty database.
    #[arg(long, env = "AICARPOOL_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of that administrator.
    #[arg(long, env = "AICARPOOL_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Whether anyone may register (`false` = invitations and admins only).
    #[arg(long, env = "AICARPOOL_ALLOW_SIGNUP", default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_signup: bool,

    /// Master key for sealing upstream credentials (base64 of 32 bytes).
    /// Without it a key file is created next to the database.
    #[arg(long, env = "AICARPOOL_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Master key file; default `<database file>.key`.
    #[arg(long, env = "AICARPOOL_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Other master keys (base64, comma-separated) credentials may be
    /// sealed under while a key is rotated: opened with, never sealed
    /// with. See `aicarpool rotate-master-key`.
    #[arg(
        long,
        env = "AICARPOOL_MASTER_KEY_OTHERS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub master_key_others: Vec<String>,

    /// Lifetime of a login session, in hours.
    #[arg(long, env = "AICARPOOL_SESSION_TTL_HOURS", default_value_t = 24 * 7)]
    pub session_ttl_hours: u32,

    /// How long open streams may run on after a shutdown signal, in seconds.
    #[arg(long, env = "AICARPOOL_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Time zone of daily, weekly and monthly limits and of bare dates in
    /// usage queries (IANA name, e.g. `Europe/Berlin`).
    #[arg(long, env = "AICARPOOL_TIMEZONE", default_value = "UTC", value_parser = parse_time_zone)]
    pub timezone: chrono_tz::Tz,

    /// A price file laid over the embedded prices (same JSON format; may
    /// give accounts a multiplier or a table of their own).
    #[arg(long, env = "AICARPOOL_PRICES")]
    pub prices: Option<PathBuf>,

    /// SMTP server for invitation mail: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` or `smtps://user:pass@host`.
    /// Without it, invitation links are only returned by the API.
    #[arg(long, env = "AICARPOOL_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of invitation mail (`Name <address>` or `address`).
    #[arg(
        long,
        env = "AICARPOOL_MAIL_FROM",
        default_value = "AiCarpool <noreply@aicarpool.invalid>"
    )]
    pub mail_from: String,

    /// Addresses upstream calls (accounts' base URLs and proxies, the
    /// OAuth token endpoint, connection tests) may reach beyond public
    /// ones: comma-separated CIDRs, addresses and host names
    /// (`*.example.com` for a domain), e.g. `127.0.0.0/8,relay.internal`.
    /// Loopback, private, link-local and metadata hosts are denied without.
    #[arg(
        long,
        env = "AICARPOOL_UPSTREAM_ALLOW",
        default_value = "",
        value_parser = parse_upstream_allow
    )]
    pub upstream_allow: OutboundGuard,

    /// MiB of request bodies buffered across all requests at once. A
    /// request that finds no room within 2 s is answered 503 with
    /// `retry-after: 1`.
    #[arg(long, env = "AICARPOOL_MAX_BUFFERED_BODY_MB", default_value_t = 512)]
    pub max_buffered_body_mb: usize,

    /// Address of a listener serving only `/metrics`, without a token
    /// (keep it off the public network). Without it `/metrics` is on the
    /// main listener and needs the admin token.
    #[arg(long, env = "AICARPOOL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Days the request log keeps each request's own row. Older rows are
    /// folded into hourly sums (reports, quotas and budgets keep counting
    /// them) and then deleted, hourly in the background. 0 keeps them.
    #[arg(long, env = "AICARPOOL_REQUEST_LOG_DAYS", default_value_t = 30)]
    pub request_log_days: u32,

    /// Seconds between two checks of the alert rules (`POST
    /// /api/groups/{id}/alerts`); 0 turns alerts off on this instance.
    #[arg(long, env = "AICARPOOL_ALERT_INTERVAL_SECS", default_value_t = 60)]
    pub alert_interval_secs: u64,

    /// Claude OAuth endpoints (`AICARPOOL_CLAUDE_OAUTH_*`).
    #[command(flatten)]
    pub claude_oauth: ClaudeOAuthArgs,

    /// Sign-in and registration throttles (`AICARPOOL_LOGIN_*`,
    /// `AICARPOOL_SIGNUPS_PER_ADDRESS_PER_HOUR`).
    #[command(flatten)]
    pub sign_in: SignInArgs,

    /// Upstream timeouts (`AICARPOOL_*_TIMEOUT_MS`,
    /// `AICARPOOL_REQUEST_DEADLINE_MS`).
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

impl ServeConfig {
    /// The public base URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn session_ttl(&self) -> chrono::Duration {
        chrono::Duration::hours(i64::from(self.session_ttl_hours))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The data plane's bounds, from the defaults and what was set here.
    pub fn gateway_config(&self) -> GatewayConfig {
        self.timeouts.apply(GatewayConfig {
            max_buffered_body_bytes: self.max_buffered_body_mb.saturating_mul(1 << 20),
            ..GatewayConfig::default()
        })
    }

    /// A configuration for tests: in-memory SQLite, random port, given token.
    pub fn for_tests(admin_token: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: "sqlite::memory:".into(),
            database_schema: None,
            redis_url: None,
            redis_prefix: None,
            public_url: Some("http://127.0.0.1:4000".into()),
            admin_token: Some(admin_token.into()),
            admin_email: None,
            admin_password: None,
            allow_signup: true,
            master_key: Some(aicarpool_core::secret::MasterKey::generate().to_base64()),
            master_key_file: None,
            master_key_others: Vec::new(),
            session_ttl_hours: 24,
            shutdown_grace_secs: 5,
            timezone: chrono_tz::Tz::UTC,
            prices: None,
            smtp_url: None,
            mail_from: "AiCarpool <noreply@aicarpool.invalid>".into(),
            // Tests' mock upstreams listen on loopback.
            upstream_allow: parse_upstream_allow("127.0.0.0/8,::1").unwrap_or_default(),
            max_buffered_body_mb: 512,
            metrics_listen: None,
            request_log_days: 30,
            alert_interval_secs: 0,
            claude_oauth: ClaudeOAuthArgs::default(),
            sign_in: SignInArgs::for_tests(),
            timeouts: TimeoutArgs::default(),
        }
    }
}

fn parse_upstream_allow(s: &str) -> Result<OutboundGuard, String> {
    OutboundGuard::parse(s).map_err(|e| e.to_string())
}

/// An IANA time zone name.
fn parse_time_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an IANA time zone name such as `Europe/Berlin`"))
}

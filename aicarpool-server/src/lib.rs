//! # aicarpool-server
//!
//! The reference server of AiCarpool: the management API, the data plane
//! and the operations endpoints on one axum router. `aicarpool serve` runs
//! it; tests and embedders build it with [`build_state`] and [`app`].

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aicarpool_core::gateway::Gateway;
use aicarpool_core::pricing::Pricing;
use aicarpool_core::secret::{MasterKey, Sealer};
use aicarpool_core::usage::UsageWriter;
use anyhow::Context;
use axum::serve::ListenerExt;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub mod alerts;
pub mod api;
pub mod backend;
pub mod commands;
pub mod config;
pub mod dataplane;
pub mod error;
pub mod mail;
pub mod metrics;
pub mod ops;
mod panics;
pub mod retention;
pub mod state;

pub use config::ServeConfig;
pub use state::AppState;

/// Opens the database, loads the master key, builds the gateway and creates
/// the configured administrator.
pub async fn build_state(config: ServeConfig) -> anyhow::Result<AppState> {
    // Before the gateway records anything.
    if metrics::recorder().is_none() {
        tracing::warn!("another metrics recorder is installed; /metrics will answer 503");
    }
    // The key first: a shared database without one must not even be opened.
    let sealer = sealer(&config)?;
    let store = backend::open_store(&config).await?;
    let pricing = match &config.prices {
        Some(path) => Pricing::embedded_with_file(path).context("AICARPOOL_PRICES")?,
        None => Pricing::embedded(),
    };
    // The writer before the limiter: a scope's counters load from the
    // store after the writer has written what it still holds.
    let gateway_config = config.gateway_config();
    let usage_writer = UsageWriter::spawn(store.clone(), gateway_config.usage_writer);
    let limiter = backend::limiter(&config, &store, usage_writer.clone()).await?;
    let shared_caches = backend::SharedCaches::connect(&config).await?;
    let mut gateway = Gateway::builder(store.clone(), sealer.clone())
        .pricing(pricing)
        .config(gateway_config)
        .limiter(limiter)
        .window_ledger(backend::window_ledger(&config).await?)
        .usage_writer(usage_writer)
        .outbound_guard(config.upstream_allow.clone())
        .claude_oauth(config.claude_oauth.config())
        .token_refresh(config.claude_oauth.token_refresh());
    if let Some(bus) = shared_caches.bus() {
        gateway = gateway.invalidation_bus(bus);
    }
    let gateway = gateway.build();
    shared_caches.listen(&gateway);
    let mailer = config
        .smtp_url
        .as_deref()
        .map(|url| mail::Mailer::new(url, &config.mail_from))
        .transpose()?;
    let oauth_logins = Arc::new(api::oauth::Logins::new(
        backend::login_store(&config).await?,
        sealer.clone(),
        config.claude_oauth.config().login_ttl,
    ));
    let sign_in = Arc::new(api::throttle::SignInGuard::new(&config.sign_in));
    let state = AppState {
        oauth_logins,
        sign_in,
        store,
        sealer,
        gateway,
        config: Arc::new(config),
        mailer,
    };
    api::bootstrap(&state).await?;
    Ok(state)
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(metrics::routes())
        .merge(api::routes())
        .merge(dataplane::routes())
        .layer(CatchPanicLayer::custom(panics::caught))
        .layer(axum::middleware::from_fn(panics::answer_in_protocol))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %loggable_path(req.uri()))
        }))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting, lets open
/// streams finish for up to the configured grace period, and flushes usage.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config.shutdown_grace();
    let gateway = state.gateway.clone();
    let retention = retention::spawn(state.store.clone(), state.config.request_log_days);
    let closer = Some(api::statements::spawn_closer(state.clone()));
    let alerting = match state.config.alert_interval_secs {
        0 => None,
        secs => {
            Some(alerts::Alerts::new(state.clone())?.spawn(std::time::Duration::from_secs(secs)))
        }
    };
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    // Without TCP_NODELAY each small SSE event can wait ~40 ms for the
    // client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Connection info gives sign-in throttling the client's address.
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing open requests");
        let _ = signalled_tx.send(());
    });
    let mut run = tokio::spawn(server.into_future());
    tokio::select! {
        ended = &mut run => ended.context("server task")??,
        Ok(()) = signalled_rx => match tokio::time::timeout(grace, &mut run).await {
            Ok(ended) => ended.context("server task")??,
            Err(_) => {
                run.abort();
                tracing::warn!(?grace, "requests still open after the grace period were closed");
            }
        },
    }
    for task in [retention, alerting, closer].into_iter().flatten() {
        task.abort();
    }
    gateway.shutdown().await;
    tracing::info!("usage flushed; stopped");
    Ok(())
}

/// The request path for logs: never the query (it may carry `?key=`) and
/// never an invitation token.
fn loggable_path(uri: &http::Uri) -> &str {
    let path = uri.path();
    if path.starts_with("/api/invitations/") {
        "/api/invitations/…"
    } else if path.starts_with("/invite/") {
        "/invite/…"
    } else {
        path
    }
}

/// The sealer of upstream credentials: the master key, and the other keys
/// a rotation accepts (`AICARPOOL_MASTER_KEY_OTHERS`).
pub fn sealer(config: &ServeConfig) -> anyhow::Result<Sealer> {
    let key = load_master_key(config)?;
    let others = config
        .master_key_others
        .iter()
        .map(|k| MasterKey::from_base64(k))
        .collect::<Result<Vec<_>, _>>()
        .context("AICARPOOL_MASTER_KEY_OTHERS")?;
    Ok(Sealer::with_others(&key, &others))
}

/// `AICARPOOL_MASTER_KEY`, else the key file (created with mode 0600 on
/// first start), else — for an in-memory database — a throw-away key.
pub fn load_master_key(config: &ServeConfig) -> anyhow::Result<MasterKey> {
    if let Some(b64) = &config.master_key {
        return MasterKey::from_base64(b64).context("AICARPOOL_MASTER_KEY");
    }
    let shared_database =
        backend::DatabaseKind::of(&config.database_url)? == backend::DatabaseKind::Postgres;
    let path = match (&config.master_key_file, database_file(&config.database_url)) {
        (Some(p), _) => p.clone(),
        // A throw-away key would leave the credentials in a shared database
        // unreadable after a restart and to every other instance.
        (None, _) if shared_database => anyhow::bail!(
            "a PostgreSQL database needs AICARPOOL_MASTER_KEY or AICARPOOL_MASTER_KEY_FILE, \
             the same on every instance"
        ),
        (None, Some(db)) => {
            let mut name = db.into_os_string();
            name.push(".key");
            PathBuf::from(name)
        }
        (None, None) => {
            tracing::warn!(
                "in-memory database without AICARPOOL_MASTER_KEY: using a throw-away master key"
            );
            return Ok(MasterKey::generate());
        }
    };
    read_or_create_key_file(&path)
}

pub fn read_or_create_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(s) => MasterKey::from_base64(&s)
            .with_context(|| format!("master key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_private_file(path, key.to_base64().as_bytes())
                .with_context(|| format!("creating master key file {}", path.display()))?;
            tracing::info!(path = %path.display(), "created master key file (mode 0600); back it up with the database");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading master key file {}", path.display())),
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The file behind a `sqlite://` URL, if it is a file.
fn database_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_queries_or_invitation_tokens() {
        let uri: http::Uri = "/v1beta/models/m:generateContent?key=aicp_a_b_c"
            .parse()
            .unwrap();
        assert_eq!(loggable_path(&uri), "/v1beta/models/m:generateContent");
        let uri: http::Uri = "/api/invitations/SECRETTOKEN/accept".parse().unwrap();
        assert_eq!(loggable_path(&uri), "/api/invitations/…");
        let uri: http::Uri = "/invite/SECRETTOKEN".parse().unwrap();
        assert_eq!(loggable_path(&uri), "/invite/…");
    }

    #[test]
    fn database_file_from_url() {
        assert_eq!(
            database_file("sqlite://aicarpool.db"),
            Some(PathBuf::from("aicarpool.db"))
        );
        assert_eq!(
            database_file("sqlite:///var/lib/a.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/a.db"))
        );
        assert_eq!(database_file("sqlite::memory:"), None);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db.key");
        let k1 = read_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = read_or_create_key_file(&path).unwrap();
        assert_eq!(k1.to_base64(), k2.to_base64());
    }
}

//! The `aicarpool` binary.

use aicarpool_server::ServeConfig;
use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "aicarpool",
    version,
    about = "Share AI coding subscriptions and API accounts with your team"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway and the management API.
    Serve(ServeConfig),
}

/// mimalloc gives freed memory back to the system within seconds; after a
/// burst of 200 × 8 MiB bodies glibc's malloc kept 31× the start RSS while
/// idle, mimalloc 2× (`aicarpool-memory` in benches/).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("AICARPOOL_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn,sqlx=warn")),
        )
        .init();
    let Cli { command } = Cli::parse();
    match command {
        Command::Serve(config) => {
            let listen = config.listen;
            let public_url = config.public_url();
            let state = aicarpool_server::build_state(config).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(listen = %listener.local_addr()?, %public_url, "aicarpool listening");
            if let Some(addr) = state.config.metrics_listen {
                let metrics = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener {addr}"))?;
                tracing::info!(listen = %metrics.local_addr()?, "metrics listening");
                let app = aicarpool_server::metrics::own_listener(state.clone());
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(metrics, app).await {
                        tracing::error!(error = %e, "the metrics listener stopped");
                    }
                });
            }
            aicarpool_server::serve(state, listener, shutdown_signal()).await
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

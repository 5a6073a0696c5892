//! The `aicarpool` binary.

use aicarpool_server::commands::users;
use aicarpool_server::ServeConfig;
use std::io::IsTerminal;
use std::path::PathBuf;

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
    Serve(Box<ServeConfig>),
    /// Users, from the host: the first administrator, a forgotten password.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
        #[command(flatten)]
        config: Box<ServeConfig>,
    },
    /// Copy the SQLite database to a new file while the server runs.
    Backup {
        /// The new file (never overwritten).
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        config: Box<ServeConfig>,
    },
    /// Re-seal every upstream credential under a new master key, with no
    /// downtime (see the README for the three steps).
    RotateMasterKey {
        /// The new key (base64), created with mode 0600 when missing.
        #[arg(long)]
        new_key_file: PathBuf,
        #[command(flatten)]
        config: Box<ServeConfig>,
    },
    /// Validate the configuration and reach the database, Redis and SMTP.
    Check(Box<ServeConfig>),
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Create a user; the password comes from AICARPOOL_NEW_PASSWORD or
    /// standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Default: the part of the email before `@`.
        #[arg(long)]
        name: Option<String>,
        /// Make the user a system administrator.
        #[arg(long)]
        system_admin: bool,
    },
    /// Set a user's password (AICARPOOL_NEW_PASSWORD or standard input)
    /// and end every session they had.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// List every user.
    ListUsers,
}

/// mimalloc gives freed memory back to the system within seconds; after a
/// burst of 200 × 8 MiB bodies glibc's malloc kept 31× the start RSS while
/// idle, mimalloc 2× (`aicarpool-memory` in benches/).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Log lines are written by a thread of their own: a request never
    // waits on a slow stderr (a pipe, a journal). Under a flood that
    // thread cannot keep up with, lines are dropped rather than requests
    // slowed. The guard flushes what is queued when `main` returns.
    let (log_writer, _log_guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(log_writer)
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
            let state = aicarpool_server::build_state(*config).await?;
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
        Command::Admin { action, config } => {
            let store = aicarpool_server::backend::open_store(&config).await?;
            match action {
                AdminAction::CreateUser {
                    email,
                    name,
                    system_admin,
                } => {
                    let password = users::read_password()?;
                    let user = users::create_user(
                        &store,
                        &email,
                        name.as_deref(),
                        system_admin,
                        &password,
                    )
                    .await?;
                    println!("created user {} <{}>", user.id, user.email);
                }
                AdminAction::ResetPassword { email } => {
                    let password = users::read_password()?;
                    let ended = users::reset_password(&store, &email, &password).await?;
                    println!("password of {email} changed; {ended} sessions ended");
                }
                AdminAction::ListUsers => print!("{}", users::list_users(&store).await?),
            }
            Ok(())
        }
        Command::Backup { to, config } => {
            let bytes = aicarpool_server::commands::backup::backup(&config, &to).await?;
            println!(
                "backed up to {} ({bytes} bytes); keep the master key with it",
                to.display()
            );
            Ok(())
        }
        Command::RotateMasterKey {
            new_key_file,
            config,
        } => {
            use aicarpool_server::commands::rotate;
            let current = aicarpool_server::sealer(&config)?;
            let new_key = rotate::new_key(&new_key_file)?;
            let store = aicarpool_server::backend::open_store(&config).await?;
            let done = rotate::rotate(&store, &current, &new_key).await?;
            println!(
                "re-sealed {} credentials under the key in {}; {} were already",
                done.resealed,
                new_key_file.display(),
                done.already
            );
            if !done.unreadable.is_empty() {
                anyhow::bail!(
                    "the credentials of {} accounts open under none of the keys: {}",
                    done.unreadable.len(),
                    done.unreadable.join(", ")
                );
            }
            println!(
                "next: restart each instance with AICARPOOL_MASTER_KEY_FILE={} and the old \
                 key in AICARPOOL_MASTER_KEY_OTHERS; drop it once all run so",
                new_key_file.display()
            );
            Ok(())
        }
        Command::Check(config) => {
            let findings = aicarpool_server::commands::check::check(&config).await;
            for f in &findings {
                println!("{f}");
            }
            if aicarpool_server::commands::check::failed(&findings) {
                anyhow::bail!("the configuration has problems (see above)");
            }
            Ok(())
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

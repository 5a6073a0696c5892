//! `aicarpool check`: validates the configuration and reaches what it
//! names — the master key, the database, Redis and SMTP — reporting each,
//! so a deployment's mistakes show before it serves anyone.

use std::fmt;
use std::time::Duration;

use aicarpool_core::usage::{UsageWriter, UsageWriterConfig};

use crate::config::ServeConfig;

/// How long each reach may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    /// Not configured, which is fine.
    Skipped(String),
    Failed(String),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(m) => write!(f, "ok      {:<14} {m}", self.what),
            Outcome::Skipped(m) => write!(f, "skipped {:<14} {m}", self.what),
            Outcome::Failed(m) => write!(f, "FAILED  {:<14} {m}", self.what),
        }
    }
}

/// Whether any finding failed.
pub fn failed(findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| matches!(f.outcome, Outcome::Failed(_)))
}

/// Checks everything `config` names, in the order `serve` needs them.
pub async fn check(config: &ServeConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |what, outcome| out.push(Finding { what, outcome });
    push(
        "configuration",
        Outcome::Ok(format!(
            "listen {}, public URL {}, time zone {}",
            config.listen,
            config.public_url(),
            config.timezone
        )),
    );
    match crate::sealer(config) {
        Ok(s) => push(
            "master key",
            Outcome::Ok(format!("deployment {}", s.deployment_id())),
        ),
        Err(e) => push("master key", Outcome::Failed(format!("{e:#}"))),
    }
    let store = match tokio::time::timeout(REACH_TIMEOUT, crate::backend::open_store(config)).await
    {
        Ok(Ok(store)) => match store.count_users().await {
            Ok(n) => {
                push(
                    "database",
                    Outcome::Ok(format!("reached, schema up to date, {n} users")),
                );
                Some(store)
            }
            Err(e) => {
                push("database", Outcome::Failed(e.to_string()));
                None
            }
        },
        Ok(Err(e)) => {
            push("database", Outcome::Failed(format!("{e:#}")));
            None
        }
        Err(_) => {
            push("database", Outcome::Failed("no answer in 10 s".into()));
            None
        }
    };
    match (&config.redis_url, &store) {
        (None, _) => push(
            "redis",
            Outcome::Skipped("AICARPOOL_REDIS_URL not set: limits are kept in this process".into()),
        ),
        (Some(_), None) => push("redis", Outcome::Skipped("needs the database first".into())),
        (Some(_), Some(store)) => {
            let writer = UsageWriter::spawn(store.clone(), UsageWriterConfig::default());
            let reached = tokio::time::timeout(REACH_TIMEOUT, async {
                let limiter = crate::backend::limiter(config, store, writer).await?;
                limiter.ready().await.map_err(anyhow::Error::msg)
            })
            .await;
            match reached {
                Ok(Ok(())) => push("redis", Outcome::Ok("reached".into())),
                Ok(Err(e)) => push("redis", Outcome::Failed(format!("{e:#}"))),
                Err(_) => push("redis", Outcome::Failed("no answer in 10 s".into())),
            }
        }
    }
    match &config.smtp_url {
        None => push(
            "smtp",
            Outcome::Skipped("AICARPOOL_SMTP_URL not set: invitations are links only".into()),
        ),
        Some(url) => match crate::mail::Mailer::new(url, &config.mail_from) {
            Err(e) => push("smtp", Outcome::Failed(e.to_string())),
            Ok(mailer) => match tokio::time::timeout(REACH_TIMEOUT, mailer.reach()).await {
                Ok(Ok(())) => push("smtp", Outcome::Ok("reached".into())),
                Ok(Err(e)) => push("smtp", Outcome::Failed(e.to_string())),
                Err(_) => push("smtp", Outcome::Failed("no answer in 10 s".into())),
            },
        },
    }
    out
}

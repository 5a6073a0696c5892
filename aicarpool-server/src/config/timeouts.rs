//! `AICARPOOL_*_TIMEOUT_MS`: how long the data plane waits for upstreams.
//!
//! The defaults suit coding clients: Claude Code and the SDKs give up on a
//! silent answer after a minute or two, so an upstream that says nothing
//! must be left in time to try another account.

use std::time::Duration;

use aicarpool_core::gateway::GatewayConfig;
use clap::Args;

/// The upstream timeouts, in milliseconds.
#[derive(Debug, Clone, Args)]
pub struct TimeoutArgs {
    /// TCP and TLS connect to an upstream.
    #[arg(long, env = "AICARPOOL_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,

    /// A non-streamed request: until the upstream's answer is read whole.
    /// Past it the next account is tried.
    #[arg(
        long,
        env = "AICARPOOL_FIRST_BYTE_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub first_byte_timeout_ms: u64,

    /// A streamed request: until the answer's first event. Past it the
    /// next account is tried.
    #[arg(
        long,
        env = "AICARPOOL_STREAM_FIRST_BYTE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub stream_first_byte_timeout_ms: u64,

    /// Longest silence between two events of a started stream (pings
    /// count); past it the stream ends with the protocol's error event.
    #[arg(long, env = "AICARPOOL_IDLE_TIMEOUT_MS", default_value_t = 120_000)]
    pub idle_timeout_ms: u64,

    /// Longest a whole answer may take, from the request's arrival.
    #[arg(long, env = "AICARPOOL_TOTAL_TIMEOUT_MS", default_value_t = 1_800_000)]
    pub total_timeout_ms: u64,

    /// How long a request may look for an account; the client's
    /// `x-stainless-timeout` shortens it. No attempt starts after it.
    #[arg(long, env = "AICARPOOL_REQUEST_DEADLINE_MS", default_value_t = 600_000)]
    pub request_deadline_ms: u64,
}

impl Default for TimeoutArgs {
    fn default() -> Self {
        let d = GatewayConfig::default();
        let ms = |t: Duration| u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        Self {
            connect_timeout_ms: ms(d.connect_timeout),
            first_byte_timeout_ms: ms(d.first_byte_timeout),
            stream_first_byte_timeout_ms: ms(d.stream_first_byte_timeout),
            idle_timeout_ms: ms(d.idle_timeout),
            total_timeout_ms: ms(d.total_timeout),
            request_deadline_ms: ms(d.request_deadline),
        }
    }
}

impl TimeoutArgs {
    /// `config` with these timeouts (zero counts as one millisecond: a
    /// timeout that never waits is no setting anyone means).
    pub fn apply(&self, config: GatewayConfig) -> GatewayConfig {
        let ms = |v: u64| Duration::from_millis(v.max(1));
        GatewayConfig {
            connect_timeout: ms(self.connect_timeout_ms),
            first_byte_timeout: ms(self.first_byte_timeout_ms),
            stream_first_byte_timeout: ms(self.stream_first_byte_timeout_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            total_timeout: ms(self.total_timeout_ms),
            request_deadline: ms(self.request_deadline_ms),
            ..config
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_gateways_own() {
        let applied = TimeoutArgs::default().apply(GatewayConfig::default());
        let d = GatewayConfig::default();
        assert_eq!(applied.connect_timeout, Duration::from_secs(5));
        assert_eq!(applied.first_byte_timeout, d.first_byte_timeout);
        assert_eq!(applied.stream_first_byte_timeout, Duration::from_secs(30));
        assert_eq!(applied.idle_timeout, Duration::from_secs(120));
        assert_eq!(applied.total_timeout, d.total_timeout);
        assert_eq!(applied.request_deadline, d.request_deadline);
    }

    #[test]
    fn a_setting_replaces_only_its_own_timeout() {
        let args = TimeoutArgs {
            idle_timeout_ms: 250,
            ..TimeoutArgs::default()
        };
        let c = args.apply(GatewayConfig::default());
        assert_eq!(c.idle_timeout, Duration::from_millis(250));
        assert_eq!(c.first_byte_timeout, Duration::from_secs(60));
    }
}

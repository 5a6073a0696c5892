//! `AICARPOOL_LOGIN_*` and `AICARPOOL_SIGNUPS_*`: how hard guessing
//! passwords and mass registration are made.

use std::time::Duration;

use clap::Args;

/// Limits on failed sign-ins and on registrations.
#[derive(Debug, Clone, Args)]
pub struct SignInArgs {
    /// Failed sign-ins for one email address within the window before the
    /// address is locked (even the right password is refused while locked).
    #[arg(long, env = "AICARPOOL_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// Failed sign-ins from one client address (an IPv6 /64) within the
    /// window before that client is locked, whatever emails it tries.
    #[arg(
        long,
        env = "AICARPOOL_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub login_max_failures_per_address: u32,

    /// Seconds a failure is remembered; also the longest lockout.
    #[arg(long, env = "AICARPOOL_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// The first lockout in seconds; it doubles with each further failure,
    /// up to the window.
    #[arg(long, env = "AICARPOOL_LOGIN_LOCKOUT_SECS", default_value_t = 30)]
    pub login_lockout_secs: u64,

    /// Registrations one client address may attempt per hour.
    #[arg(
        long,
        env = "AICARPOOL_SIGNUPS_PER_ADDRESS_PER_HOUR",
        default_value_t = 20
    )]
    pub signups_per_address_per_hour: u32,
}

impl Default for SignInArgs {
    fn default() -> Self {
        Self {
            login_max_failures: 5,
            login_max_failures_per_address: 50,
            login_window_secs: 900,
            login_lockout_secs: 30,
            signups_per_address_per_hour: 20,
        }
    }
}

impl SignInArgs {
    /// Per-email limits as set, per-address ones out of reach: the test
    /// suite calls from one loopback address and would otherwise lock
    /// itself out. Tests of the address limits set their own.
    pub fn for_tests() -> Self {
        Self {
            login_max_failures_per_address: 1_000_000,
            signups_per_address_per_hour: 1_000_000,
            ..Self::default()
        }
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(self.login_window_secs.max(1))
    }

    pub fn first_lockout(&self) -> Duration {
        Duration::from_secs(self.login_lockout_secs.max(1))
    }
}

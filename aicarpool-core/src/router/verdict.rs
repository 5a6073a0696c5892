//! The one answer a client gets when no account could serve: the most
//! telling status across the accounts tried and those held back.

use std::time::Duration;

use super::{HeldBack, Outcome};

/// Why a request could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every account is rate limited: 429, come back after `retry_after`
    /// (the soonest recovery, when known).
    RateLimited { retry_after: Option<Duration> },
    /// Some account is overloaded, saturated or probing: 529, retry soon.
    Overloaded,
    /// Every account's credentials are refused: an admin must act.
    CredentialsRejected,
    /// Down: 5xx, timeouts, connect errors (mixed with anything but overload).
    Unavailable,
}

/// Counts what stood in the way, account by account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    rate_limited: u32,
    overloaded: u32,
    failing: u32,
    credentials: u32,
    /// Of `overloaded`: at their concurrency limit (waiting may help).
    busy: u32,
    retry_after: Option<Duration>,
}

impl Tally {
    /// Starts from the accounts a plan left out.
    pub fn from_held_back(h: &HeldBack) -> Self {
        Self {
            rate_limited: h.rate_limited,
            overloaded: h.overloaded + h.saturated + h.probing,
            failing: h.failing,
            credentials: h.needs_attention,
            busy: h.saturated,
            retry_after: h.rate_limit_recovery,
        }
    }

    /// An account found saturated, or no longer admitting, at attempt time.
    pub fn busy(&mut self) {
        self.overloaded += 1;
        self.busy += 1;
    }

    /// Every account in the way was only at its concurrency limit: a slot
    /// coming free would let the request through.
    pub fn only_busy(&self) -> bool {
        let total = self.rate_limited + self.overloaded + self.failing + self.credentials;
        total > 0 && self.busy == total
    }

    /// A failed attempt; `retry_after` when the upstream named a wait.
    pub fn attempt(&mut self, outcome: &Outcome, retry_after: Option<Duration>) {
        match outcome {
            Outcome::RateLimited => {
                self.rate_limited += 1;
                if let Some(w) = retry_after {
                    self.retry_after = Some(self.retry_after.map_or(w, |r| r.min(w)));
                }
            }
            Outcome::Overloaded => self.overloaded += 1,
            Outcome::CredentialsRejected { .. } => self.credentials += 1,
            Outcome::Failed { .. } => self.failing += 1,
            Outcome::Success { .. } | Outcome::ClientError { .. } => {}
        }
    }

    /// The answer, or `None` when nothing stood in the way (nothing tried).
    pub fn verdict(&self) -> Option<Verdict> {
        let total = self.rate_limited + self.overloaded + self.failing + self.credentials;
        Some(if total == 0 {
            return None;
        } else if self.rate_limited == total {
            Verdict::RateLimited {
                retry_after: self.retry_after,
            }
        } else if self.overloaded > 0 {
            Verdict::Overloaded
        } else if self.credentials == total {
            Verdict::CredentialsRejected
        } else {
            Verdict::Unavailable
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Outcome {
        Outcome::Failed {
            status: None,
            reason: "refused".into(),
        }
    }

    #[test]
    fn all_rate_limited_gives_the_soonest_recovery() {
        let mut t = Tally::from_held_back(&HeldBack {
            rate_limited: 1,
            rate_limit_recovery: Some(Duration::from_secs(90)),
            ..HeldBack::default()
        });
        t.attempt(&Outcome::RateLimited, Some(Duration::from_secs(45)));
        t.attempt(&Outcome::RateLimited, None);
        assert_eq!(
            t.verdict(),
            Some(Verdict::RateLimited {
                retry_after: Some(Duration::from_secs(45))
            })
        );
    }

    #[test]
    fn overload_beats_down_and_down_beats_a_partial_rate_limit() {
        let mut t = Tally::default();
        assert_eq!(t.verdict(), None);
        t.attempt(&Outcome::RateLimited, None);
        t.attempt(&failed(), None);
        assert_eq!(t.verdict(), Some(Verdict::Unavailable));
        t.busy();
        assert_eq!(t.verdict(), Some(Verdict::Overloaded));
        let mut t = Tally::from_held_back(&HeldBack {
            needs_attention: 2,
            ..HeldBack::default()
        });
        t.attempt(
            &Outcome::CredentialsRejected {
                status: 401,
                reason: "refused".into(),
            },
            None,
        );
        assert_eq!(t.verdict(), Some(Verdict::CredentialsRejected));
        t.attempt(&Outcome::ClientError { status: 400 }, None);
        assert_eq!(t.verdict(), Some(Verdict::CredentialsRejected));
    }
}

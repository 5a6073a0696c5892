//! Failover helpers of the Messages path: the request's deadline, what an
//! upstream answer means for the account, and the one error a client gets
//! when no account could serve.

use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};

use super::{GatewayConfig, GatewayError};
use crate::provider::ResponseClass;
use crate::router::{Outcome, Tally, Verdict};

/// Longest wait a client is told to take: an upstream's weekly window at
/// most (the router caps cooling the same way), never what a broken or
/// hostile upstream names.
const MAX_CLIENT_RETRY_AFTER: Duration = Duration::from_secs(8 * 24 * 3600);

/// The SDKs' own timeout header (seconds); Claude Code sends it.
const CLIENT_TIMEOUT_HEADER: &str = "x-stainless-timeout";

/// When the request stops looking for an account: the configured bound, or
/// sooner when the client says it gives up sooner.
pub(super) fn deadline(headers: &HeaderMap, config: &GatewayConfig, started: Instant) -> Instant {
    let client = headers
        .get(CLIENT_TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        // A value no `Duration` holds (huge, NaN, infinite) says nothing.
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let bound = client.map_or(config.request_deadline, |c| c.min(config.request_deadline));
    started + bound
}

/// What an upstream status means for the account that answered.
pub(super) fn outcome(class: ResponseClass, status: StatusCode, latency: Duration) -> Outcome {
    let code = status.as_u16();
    match class {
        ResponseClass::Success => Outcome::Success { latency },
        ResponseClass::RateLimited => Outcome::RateLimited,
        ResponseClass::Overloaded => Outcome::Overloaded,
        ResponseClass::CredentialsRejected => Outcome::CredentialsRejected {
            status: code,
            reason: "the upstream refused the account's credentials".into(),
        },
        ResponseClass::ServerError => Outcome::Failed {
            status: Some(code),
            reason: format!("status {code}"),
        },
        ResponseClass::ClientError => Outcome::ClientError { status: code },
    }
}

/// The error for a request no account served.
pub(super) fn refusal(tally: &Tally, last: Option<&str>, out_of_time: bool) -> GatewayError {
    let detail = |prefix: &str| match last {
        Some(m) => format!("{prefix}: {m}"),
        None => prefix.to_owned(),
    };
    match tally.verdict() {
        Some(Verdict::RateLimited { retry_after }) => GatewayError::RateLimited {
            message: detail("every account of this group is rate limited"),
            retry_after: retry_after.map(|d| d.min(MAX_CLIENT_RETRY_AFTER)),
            refusal: None,
        },
        Some(Verdict::Overloaded) => GatewayError::Overloaded(detail(
            "the accounts of this group are overloaded, recovering or at their concurrency limit",
        )),
        Some(Verdict::CredentialsRejected) => GatewayError::BadUpstream(
            "the upstream account's credentials were refused; ask the group admin to check it"
                .into(),
        ),
        Some(Verdict::Unavailable) => GatewayError::Unavailable(detail("upstream unavailable")),
        None if out_of_time => GatewayError::Unavailable(
            "the request's deadline passed before an account could answer".into(),
        ),
        None => GatewayError::Unavailable("no upstream account could be tried".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_never_told_to_wait_longer_than_the_cap() {
        let mut tally = Tally::default();
        tally.attempt(
            &Outcome::RateLimited,
            Some(Duration::from_secs(u32::MAX.into())),
        );
        match refusal(&tally, None, false) {
            GatewayError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(MAX_CLIENT_RETRY_AFTER));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_client_timeout_shortens_the_deadline() {
        let config = GatewayConfig::default();
        let now = Instant::now();
        let mut h = HeaderMap::new();
        assert_eq!(deadline(&h, &config, now), now + config.request_deadline);
        h.insert(CLIENT_TIMEOUT_HEADER, "30".parse().unwrap());
        assert_eq!(deadline(&h, &config, now), now + Duration::from_secs(30));
        h.insert(CLIENT_TIMEOUT_HEADER, "99999".parse().unwrap());
        assert_eq!(deadline(&h, &config, now), now + config.request_deadline);
        // Values no `Duration` holds are ignored, never a panic.
        for huge in [
            "1e300",
            "1e20",
            "inf",
            "NaN",
            "-5",
            "0",
            "18446744073709551616",
        ] {
            h.insert(CLIENT_TIMEOUT_HEADER, huge.parse().unwrap());
            assert_eq!(
                deadline(&h, &config, now),
                now + config.request_deadline,
                "{huge}"
            );
        }
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let o = |s: u16| {
            let s = StatusCode::from_u16(s).unwrap();
            outcome(ResponseClass::of(s), s, Duration::ZERO)
        };
        assert_eq!(o(429), Outcome::RateLimited);
        assert_eq!(o(529), Outcome::Overloaded);
        assert!(matches!(
            o(403),
            Outcome::CredentialsRejected { status: 403, .. }
        ));
        assert_eq!(o(400), Outcome::ClientError { status: 400 });
        assert!(matches!(
            o(502),
            Outcome::Failed {
                status: Some(502),
                ..
            }
        ));
        let mut t = Tally::default();
        t.attempt(&o(429), Some(Duration::from_secs(3)));
        let e = refusal(&t, Some("slow down"), false);
        assert_eq!(e.status(), 429);
        assert!(e.to_string().contains("slow down"));
        assert_eq!(refusal(&Tally::default(), None, true).status(), 503);
    }
}

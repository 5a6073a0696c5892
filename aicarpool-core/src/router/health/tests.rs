//! The health state machine, transition by transition.

use super::*;

const T0: u64 = 1_767_225_600_000;

fn failed() -> Outcome {
    Outcome::Failed {
        status: Some(500),
        reason: "status 500".into(),
    }
}

fn record(h: &AccountHealth, now: u64, o: Outcome) {
    h.record(now, &o, &RateSignals::default(), &HealthPolicy::default());
}

#[test]
fn rate_limit_without_a_time_escalates_and_recovers_through_one_probe() {
    let h = AccountHealth::new("a");
    record(&h, T0, Outcome::RateLimited);
    assert_eq!(
        h.state(T0 + 4_999),
        HealthState::Cooling {
            until_ms: T0 + 5_000,
            reason: CoolReason::RateLimited
        }
    );
    // A second 429 that was already in flight does not escalate.
    record(&h, T0 + 10, Outcome::RateLimited);
    assert!(matches!(
        h.state(T0 + 5_000),
        HealthState::HalfOpen { probing: false }
    ));
    let Admission::Probe(token) = h.try_begin(T0 + 5_000) else {
        panic!("half-open takes a probe");
    };
    assert_eq!(
        h.try_begin(T0 + 5_001),
        Admission::Refused(HealthState::HalfOpen { probing: true }),
        "exactly one probe in flight"
    );
    record(&h, T0 + 5_100, Outcome::RateLimited);
    h.release_probe(token);
    // Second cooling in a row: 10 s.
    assert_eq!(
        h.state(T0 + 5_100),
        HealthState::Cooling {
            until_ms: T0 + 15_100,
            reason: CoolReason::RateLimited
        }
    );
    let Admission::Probe(token) = h.try_begin(T0 + 15_100) else {
        panic!()
    };
    record(
        &h,
        T0 + 15_200,
        Outcome::Success {
            latency: Duration::ZERO,
        },
    );
    h.release_probe(token);
    assert_eq!(h.state(T0 + 15_200), HealthState::Healthy);
    assert_eq!(h.snapshot(T0).consecutive_cooldowns, 0);
}

#[test]
fn escalation_is_capped() {
    let h = AccountHealth::new("a");
    let mut now = T0;
    for _ in 0..20 {
        record(&h, now, Outcome::RateLimited);
        let HealthState::Cooling { until_ms, .. } = h.state(now) else {
            panic!()
        };
        assert!(until_ms - now <= 300_000);
        now = until_ms;
    }
}

#[test]
fn failures_cool_after_three_within_a_minute() {
    let h = AccountHealth::new("a");
    record(&h, T0, failed());
    record(&h, T0 + 61_000, failed());
    record(&h, T0 + 62_000, failed());
    assert_eq!(
        h.state(T0 + 62_000),
        HealthState::Healthy,
        "first one aged out"
    );
    record(&h, T0 + 63_000, failed());
    assert!(matches!(
        h.state(T0 + 63_000),
        HealthState::Cooling { reason: CoolReason::Failing, until_ms } if until_ms == T0 + 93_000
    ));
    // A failed probe cools again at once, for longer.
    let Admission::Probe(t) = h.try_begin(T0 + 93_000) else {
        panic!()
    };
    record(&h, T0 + 93_500, failed());
    h.release_probe(t);
    assert!(matches!(
        h.state(T0 + 93_500),
        HealthState::Cooling { until_ms, .. } if until_ms == T0 + 153_500
    ));
}

#[test]
fn overload_rate_limit_until_and_client_errors() {
    let h = AccountHealth::new("a");
    record(&h, T0, Outcome::ClientError { status: 400 });
    assert_eq!(h.state(T0), HealthState::Healthy);
    assert_eq!(
        h.snapshot(T0).recent_outcomes,
        0,
        "400 is the client's fault"
    );
    record(&h, T0, Outcome::Overloaded);
    assert!(matches!(
        h.state(T0),
        HealthState::Cooling { reason: CoolReason::Overloaded, until_ms } if until_ms == T0 + 30_000
    ));
    let h = AccountHealth::new("b");
    let signals = RateSignals {
        retry_at_ms: Some(T0 + 42_000),
        unified: None,
    };
    h.record(
        T0,
        &Outcome::RateLimited,
        &signals,
        &HealthPolicy::default(),
    );
    assert!(
        matches!(h.state(T0), HealthState::Cooling { until_ms, .. } if until_ms == T0 + 42_000)
    );
}

#[test]
fn credentials_need_an_admin() {
    let h = AccountHealth::new("a");
    record(
        &h,
        T0,
        Outcome::CredentialsRejected {
            status: 401,
            reason: "refused".into(),
        },
    );
    let later = T0 + 86_400_000;
    assert_eq!(h.state(later), HealthState::NeedsAttention);
    assert!(matches!(h.try_begin(later), Admission::Refused(_)));
    record(
        &h,
        later,
        Outcome::Success {
            latency: Duration::ZERO,
        },
    );
    assert_eq!(h.state(later), HealthState::NeedsAttention);
    let snap = h.snapshot(later);
    let last = snap.last_error.unwrap();
    assert_eq!((last.status, last.message.as_str()), (Some(401), "refused"));
    h.reset();
    assert_eq!(h.state(later), HealthState::Healthy);
    assert!(h.snapshot(later).last_error.is_none());
}

#[test]
fn success_rate_counts_the_last_outcomes() {
    let h = AccountHealth::new("a");
    for i in 0..100 {
        let o = if i % 4 == 0 {
            Outcome::Success {
                latency: Duration::ZERO,
            }
        } else {
            Outcome::ClientError { status: 404 }
        };
        record(&h, T0, o);
    }
    record(&h, T0, failed());
    let s = h.snapshot(T0);
    assert_eq!(s.recent_outcomes, 26);
    assert!((s.recent_success_rate.unwrap() - 25.0 / 26.0).abs() < 1e-9);
}

//! Why each account of a group can or cannot take a request now: the
//! answer of `GET /api/groups/{id}/routing`.

use std::sync::atomic::Ordering;

use super::health::{CoolReason, HealthState};
use super::{Candidate, Eligibility, RouteRequest};

/// What the router knows of one candidate's health.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub state: HealthState,
    pub warned: bool,
    pub sticky: u64,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            state: HealthState::Healthy,
            warned: false,
            sticky: 0,
        }
    }
}

/// For routers that keep no health: the static checks only.
pub(super) fn without_health(
    request: &RouteRequest<'_>,
    candidates: &[Candidate],
) -> Vec<Eligibility> {
    let seen = vec![Seen::default(); candidates.len()];
    with_health(request, candidates, &seen)
}

fn time(ms: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

fn reason_words(r: CoolReason) -> &'static str {
    match r {
        CoolReason::RateLimited => "rate limited",
        CoolReason::Overloaded => "overloaded",
        CoolReason::Failing => "failing (5xx, timeouts or connect errors)",
        CoolReason::CredentialsRejected => "credentials refused",
    }
}

pub(super) fn with_health(
    request: &RouteRequest<'_>,
    candidates: &[Candidate],
    seen: &[Seen],
) -> Vec<Eligibility> {
    let mut out: Vec<Eligibility> = candidates
        .iter()
        .zip(seen)
        .map(|(c, s)| {
            let a = &c.account.account;
            let in_flight = c.account.in_flight.load(Ordering::Relaxed);
            let mut e = Eligibility {
                account_id: a.id.clone(),
                name: a.name.clone(),
                dedicated: c.dedicated,
                priority: c.priority,
                weight: c.weight,
                state: s.state.as_str(),
                eligible: false,
                reason: String::new(),
                cooling_until: None,
                in_flight,
                max_concurrency: a.max_concurrency,
                sticky_sessions: s.sticky,
            };
            e.reason = if !a.enabled {
                e.state = "disabled";
                "disabled by an admin".into()
            } else if a.platform.protocol() != request.protocol {
                format!(
                    "speaks the {:?} protocol, not {:?}",
                    a.platform.protocol(),
                    request.protocol
                )
                .to_lowercase()
            } else if !request.model.is_empty() && !a.serves_model(request.model) {
                format!("does not serve model `{}`", request.model)
            } else {
                match s.state {
                    HealthState::Cooling { until_ms, reason } => {
                        e.cooling_until = time(until_ms);
                        let until = e
                            .cooling_until
                            .map_or_else(String::new, |t| format!(" until {}", t.to_rfc3339()));
                        format!("cooling: {}{until}", reason_words(reason))
                    }
                    HealthState::NeedsAttention => "needs attention: the upstream refused its \
                         credentials; updating the account brings it back"
                        .into(),
                    HealthState::HalfOpen { probing: true } => {
                        "half-open: its probe request is in flight".into()
                    }
                    _ if c.account.saturated() => format!(
                        "at its concurrency limit ({in_flight} of {})",
                        a.max_concurrency.unwrap_or_default()
                    ),
                    HealthState::HalfOpen { probing: false } => {
                        e.eligible = true;
                        "half-open: the next request probes it".into()
                    }
                    HealthState::Healthy => {
                        e.eligible = true;
                        "eligible".into()
                    }
                }
            };
            e
        })
        .collect();

    // Eligible accounts behind a better tier wait as standby.
    let best = out
        .iter()
        .zip(candidates)
        .filter(|(e, _)| e.eligible)
        .map(|(_, c)| (!c.dedicated, c.priority))
        .min();
    for ((e, c), s) in out.iter_mut().zip(candidates).zip(seen) {
        if !e.eligible {
            continue;
        }
        let tier = (!c.dedicated, c.priority);
        if best.is_some_and(|b| tier > b) {
            e.reason = if best.is_some_and(|b| !b.0) && !c.dedicated {
                "standby: the pool serves when no dedicated account can".into()
            } else {
                "standby: used when the better-priority accounts cannot serve".into()
            };
        } else if s.warned {
            e.reason = "eligible, lower preference: the upstream warned that its usage \
                        window is nearly used"
                .into();
        }
    }
    out
}

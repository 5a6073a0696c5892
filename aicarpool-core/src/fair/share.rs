//! Splitting a window's capacity among its members.
//!
//! Weighted max-min fairness ("water filling"): members are served in the
//! order of their demand per unit of weight; each gets their demand while
//! it is below the level the remaining capacity allows, and the members
//! left share what remains by weight. A member's demand is their use so
//! far carried at the same pace to the window's end, counted generously
//! while the pace rests on a few requests, so a light member's share
//! covers what they will need and a heavy member gets the rest.
//! Members of the group not yet active in the window keep a small reserve
//! that shrinks as the reset nears, so the window is never drained before
//! they arrive.

use std::time::Duration;

use super::{MemberId, WindowId, WindowUse};

/// A member's claim on the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub weight: u32,
    pub micro_usd: i64,
}

/// Each demand's share of `capacity`, in order.
pub fn max_min(demands: &[Demand], capacity: i64) -> Vec<i64> {
    let weight = |d: &Demand| f64::from(d.weight.max(1));
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by(|&a, &b| {
        let (da, db) = (&demands[a], &demands[b]);
        (da.micro_usd as f64 / weight(da)).total_cmp(&(db.micro_usd as f64 / weight(db)))
    });
    let mut shares = vec![0.0; demands.len()];
    let mut left = capacity.max(0) as f64;
    let mut weights: f64 = demands.iter().map(weight).sum();
    let mut served = 0;
    for &i in &order {
        let d = &demands[i];
        let need = d.micro_usd.max(0) as f64;
        if need > left / weights * weight(d) {
            break;
        }
        shares[i] = need;
        left -= need;
        weights -= weight(d);
        served += 1;
    }
    if served < order.len() {
        let level = left / weights;
        for &i in &order[served..] {
            shares[i] = level * weight(&demands[i]);
        }
    } else if left > 0.0 {
        // Every demand is met: what is left is everyone's, by weight.
        let all: f64 = demands.iter().map(weight).sum();
        for (share, d) in shares.iter_mut().zip(demands) {
            *share += left * weight(d) / all;
        }
    }
    shares.into_iter().map(|s| s.round() as i64).collect()
}

/// A member not yet active keeps this fraction of the capacity, at the
/// window's start.
const NEWCOMER_RESERVE: f64 = 0.02;
/// All newcomers together keep at most this fraction.
const NEWCOMERS_RESERVE_MAX: f64 = 0.05;
/// A pace is not carried forward from less than this part of the window.
const MIN_ELAPSED_PART: f64 = 0.05;

/// A member's demand on the window: what they used, and the requests
/// they will still send at their pace so far (`pace`: further requests per
/// request sent), counted generously, at their average cost. A pace read
/// from a few requests is uncertain: one standard deviation of a Poisson
/// count is added, and room for one more request while the window runs.
fn demand(used: i64, requests: u64, pace: f64, left_part: f64) -> i64 {
    if left_part <= 0.0 {
        return used;
    }
    let requests = requests.max(1) as f64;
    let average = used as f64 / requests;
    let coming = requests * pace;
    (used as f64 + average * (coming + coming.sqrt() + 1.0)).round() as i64
}

/// One member's line in a window's split.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberShare {
    pub member: MemberId,
    pub weight: u32,
    pub used_micro_usd: i64,
    pub share_micro_usd: i64,
}

impl MemberShare {
    pub fn over(&self) -> bool {
        self.used_micro_usd >= self.share_micro_usd
    }
}

/// A window's capacity split among its members at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub capacity_micro_usd: i64,
    pub members: Vec<MemberShare>,
}

impl Split {
    /// Splits what `usage` can still share among its active members and
    /// `group` (the asking group's members with their weights; those not
    /// active yet keep a newcomer's reserve). `None` while the capacity is
    /// unknown.
    pub fn at(
        window: &WindowId,
        usage: &WindowUse,
        group: &[(MemberId, u32)],
        now_ms: u64,
    ) -> Option<Split> {
        let capacity = usage.capacity()?;
        let shareable = usage.shareable()?;
        let length = window.kind.length().as_secs_f64();
        let elapsed = (now_ms as f64 / 1000.0 - window.starts_at() as f64).clamp(0.0, length);
        let left_part = 1.0 - elapsed / length;
        let pace = (length - elapsed) / elapsed.max(length * MIN_ELAPSED_PART);

        let mut members: Vec<MemberShare> = usage
            .members
            .iter()
            .map(|m| MemberShare {
                // The group's own weights are current; the ledger's are as
                // of the member's last charge.
                weight: group
                    .iter()
                    .find(|(id, _)| id == &m.member)
                    .map_or(m.weight, |(_, w)| *w),
                member: m.member.clone(),
                used_micro_usd: m.used_micro_usd,
                share_micro_usd: 0,
            })
            .collect();
        let mut demands: Vec<Demand> = members
            .iter()
            .zip(&usage.members)
            .map(|(m, seen)| Demand {
                weight: m.weight,
                micro_usd: demand(seen.used_micro_usd, seen.requests, pace, left_part),
            })
            .collect();
        let newcomers: Vec<&(MemberId, u32)> = group
            .iter()
            .filter(|(id, _)| usage.member(id).is_none())
            .collect();
        if !newcomers.is_empty() {
            let each = (NEWCOMER_RESERVE * shareable as f64)
                .min(NEWCOMERS_RESERVE_MAX * shareable as f64 / newcomers.len() as f64)
                * left_part;
            for (id, weight) in newcomers {
                members.push(MemberShare {
                    member: id.clone(),
                    weight: *weight,
                    used_micro_usd: 0,
                    share_micro_usd: 0,
                });
                demands.push(Demand {
                    weight: *weight,
                    micro_usd: each.round() as i64,
                });
            }
        }
        for (m, share) in members.iter_mut().zip(max_min(&demands, shareable)) {
            // What a member already used is theirs, even if it was more.
            m.share_micro_usd = share;
        }
        Some(Split {
            capacity_micro_usd: capacity,
            members,
        })
    }

    pub fn member(&self, member: &MemberId) -> Option<&MemberShare> {
        self.members.iter().find(|m| &m.member == member)
    }
}

/// What the fair share says about a member's next request on a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing holds the member back: the window is below the group's
    /// `engageAt`, its capacity is not known yet, or the member is within
    /// their share.
    Go,
    /// The member used their share while the window is tight.
    Over {
        used_micro_usd: i64,
        share_micro_usd: i64,
        /// When the member's share will have grown past their use (the
        /// others' pace leaves room as the reset nears), at the latest
        /// the reset.
        retry_after: Duration,
    },
}

/// Judges `member`'s next request on `window`.
pub fn verdict(
    window: &WindowId,
    usage: &WindowUse,
    group: &[(MemberId, u32)],
    member: &MemberId,
    engage_at: f64,
    now_ms: u64,
) -> Verdict {
    if usage.utilization().is_none_or(|u| u < engage_at) {
        return Verdict::Go;
    }
    let over_at = |t_ms: u64| {
        Split::at(window, usage, group, t_ms)
            .and_then(|s| s.member(member).cloned())
            .filter(MemberShare::over)
    };
    let Some(now) = over_at(now_ms) else {
        return Verdict::Go;
    };
    let reset_ms = window.resets_at.saturating_mul(1000);
    // Shares only grow as time passes with use unchanged: scan ahead for
    // the first moment this member is within again.
    const STEPS: u64 = 200;
    let step = (reset_ms.saturating_sub(now_ms) / STEPS).max(1000);
    let mut t = now_ms;
    let within_at = loop {
        t = t.saturating_add(step);
        if t >= reset_ms {
            break reset_ms;
        }
        if over_at(t).is_none() {
            break t;
        }
    };
    Verdict::Over {
        used_micro_usd: now.used_micro_usd,
        share_micro_usd: now.share_micro_usd,
        retry_after: Duration::from_millis(within_at.saturating_sub(now_ms).max(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MemberUse, Observation};
    use super::*;

    const USD: i64 = 1_000_000;

    fn d(weight: u32, usd: i64) -> Demand {
        Demand {
            weight,
            micro_usd: usd * USD,
        }
    }

    #[test]
    fn light_demands_are_met_and_the_rest_is_shared_by_weight() {
        let shares = max_min(&[d(1, 1), d(2, 100), d(1, 100)], 31 * USD);
        assert_eq!(shares, vec![USD, 20 * USD, 10 * USD]);
    }

    #[test]
    fn capacity_to_spare_is_spread_by_weight() {
        let shares = max_min(&[d(1, 1), d(3, 1)], 10 * USD);
        assert_eq!(shares, vec![3 * USD, 7 * USD]);
        assert_eq!(max_min(&[], 10 * USD), Vec::<i64>::new());
        assert_eq!(max_min(&[d(1, 5)], -3), vec![0]);
    }

    #[test]
    fn shares_never_exceed_the_capacity() {
        let mut seed = 7u64;
        for _ in 0..500 {
            let mut next = |m: u64| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) % m
            };
            let n = 1 + next(8) as usize;
            let demands: Vec<Demand> = (0..n)
                .map(|_| Demand {
                    weight: 1 + next(100) as u32,
                    micro_usd: next(50) as i64 * USD,
                })
                .collect();
            let capacity = next(100) as i64 * USD;
            let shares = max_min(&demands, capacity);
            let total: i64 = shares.iter().sum();
            assert!(
                (total - capacity).abs() <= n as i64,
                "{demands:?} {capacity} {shares:?}"
            );
            let level_of = |i: usize| shares[i] as f64 / f64::from(demands[i].weight);
            for i in 0..n {
                // Max-min: a member short of their demand holds the top level.
                if shares[i] < demands[i].micro_usd - 1 {
                    for j in 0..n {
                        assert!(
                            level_of(j) <= level_of(i) + 1.0
                                || shares[j] <= demands[j].micro_usd + 1
                        );
                    }
                }
            }
        }
    }

    fn assert_close(got: i64, want: i64) {
        assert!((got - want).abs() <= 2, "{got} is not {want}");
    }

    fn member(u: &str) -> MemberId {
        MemberId::new("g", u)
    }

    /// A 5-hour window half over, $20 capacity, 70 % used: the heavy
    /// member $12, two light ones $1 each.
    fn tight() -> (WindowId, WindowUse, u64) {
        let window = WindowId {
            account_id: "a".into(),
            kind: super::super::WindowKind::FiveHour,
            resets_at: 1_000_000 + 5 * 3600,
        };
        let now_ms = (1_000_000 + 150 * 60) * 1000;
        let usage = WindowUse {
            members: vec![
                MemberUse {
                    member: member("heavy"),
                    weight: 1,
                    used_micro_usd: 12 * USD,
                    requests: 120,
                },
                MemberUse {
                    member: member("l1"),
                    weight: 1,
                    used_micro_usd: USD,
                    requests: 10,
                },
                MemberUse {
                    member: member("l2"),
                    weight: 1,
                    used_micro_usd: USD,
                    requests: 10,
                },
            ],
            sent_micro_usd: 14 * USD,
            first: Some(Observation {
                utilization: 0.0,
                sent_micro_usd: 0,
            }),
            last: Some(Observation {
                utilization: 0.7,
                sent_micro_usd: 14 * USD,
            }),
        };
        (window, usage, now_ms)
    }

    #[test]
    fn the_split_reserves_the_light_members_pace() {
        let (window, usage, now) = tight();
        let split = Split::at(&window, &usage, &[], now).unwrap();
        assert_eq!(split.capacity_micro_usd, 20 * USD);
        let share = |u: &str| split.member(&member(u)).unwrap().share_micro_usd;
        // $19.60 shared (2 % headroom). Half the window gone: each light
        // member will send 10 more $0.10 requests at their pace, counted
        // with √10 to spare and one more: $2.42 in all.
        assert_close(share("l1"), 2_416_228);
        assert_close(share("heavy"), 19_600_000 - 2 * 2_416_228);
    }

    #[test]
    fn below_engage_at_or_within_the_share_the_member_goes() {
        let (window, usage, now) = tight();
        assert_eq!(
            verdict(&window, &usage, &[], &member("heavy"), 0.8, now),
            Verdict::Go
        );
        assert_eq!(
            verdict(&window, &usage, &[], &member("l1"), 0.6, now),
            Verdict::Go
        );
        assert_eq!(
            verdict(&window, &usage, &[], &member("new"), 0.6, now),
            Verdict::Go
        );
    }

    #[test]
    fn an_over_member_is_told_when_their_share_has_grown() {
        let (window, mut usage, now) = tight();
        usage.members[0].used_micro_usd = 17 * USD;
        usage.sent_micro_usd = 19 * USD;
        usage.last = Some(Observation {
            utilization: 0.95,
            sent_micro_usd: 19 * USD,
        });
        let Verdict::Over {
            used_micro_usd,
            share_micro_usd,
            retry_after,
        } = verdict(&window, &usage, &[], &member("heavy"), 0.6, now)
        else {
            panic!("the heavy member is over");
        };
        assert_eq!(used_micro_usd, 17 * USD);
        assert_close(share_micro_usd, 19_600_000 - 2 * 2_416_228);
        // Within once each light member's reserve is under $1.30: fewer
        // than one more request at their pace, at t ≈ 4.55 h, about
        // 123 min from now.
        let minutes = retry_after.as_secs() / 60;
        assert!((121..=125).contains(&minutes), "{retry_after:?}");
    }

    #[test]
    fn newcomers_of_the_group_keep_a_reserve() {
        let (window, usage, now) = tight();
        let group = [(member("late"), 1), (member("heavy"), 1)];
        let split = Split::at(&window, &usage, &group, now).unwrap();
        let late = split.member(&member("late")).unwrap();
        // 2 % of $19.60, half the window left.
        assert_close(late.share_micro_usd, 196_000);
        let heavy = split.member(&member("heavy")).unwrap().share_micro_usd;
        assert_close(heavy, 19_600_000 - 2 * 2_416_228 - 196_000);
    }

    #[test]
    fn use_the_gateway_did_not_send_shrinks_what_is_shared() {
        let (window, mut usage, now) = tight();
        // The upstream already counted 20 % before the gateway kept count.
        usage.first = Some(Observation {
            utilization: 0.2,
            sent_micro_usd: 0,
        });
        usage.last = Some(Observation {
            utilization: 0.9,
            sent_micro_usd: 14 * USD,
        });
        let split = Split::at(&window, &usage, &[], now).unwrap();
        assert_eq!(split.capacity_micro_usd, 20 * USD);
        let total: i64 = split.members.iter().map(|m| m.share_micro_usd).sum();
        // $20 less 2 % headroom, less the $4 counted before.
        assert_close(total, 15_600_000);
    }
}

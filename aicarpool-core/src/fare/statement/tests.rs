use chrono::NaiveDate;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::fare::Fee;

const USD: i64 = 1_000_000;

fn june() -> Month {
    Month::parse("2026-06").unwrap()
}

fn fee_all_month(usd: i64) -> Vec<FeeChange> {
    vec![FeeChange {
        from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        fee: Some(Fee::monthly(usd * USD)),
    }]
}

fn used(group: &str, account: &str, user: &str, cost: i64) -> FareUse {
    FareUse {
        group_id: group.into(),
        account_id: Some(account.into()),
        user_id: user.into(),
        cost_micro_usd: cost,
        requests: 1,
        errors: 0,
        input_tokens: 10,
        output_tokens: 5,
    }
}

fn input(equal_part: f64, fee_accounts: Vec<FeeAccount>, usage: Vec<FareUse>) -> StatementInput {
    StatementInput {
        month: june(),
        group_id: "g".into(),
        split: FareSplit { equal_part },
        fee_accounts,
        account_names: BTreeMap::from([("api".into(), "API key".into())]),
        usage,
        members: ["alice", "bob", "carol"]
            .into_iter()
            .map(|n| (n.to_owned(), n.to_uppercase()))
            .collect(),
    }
}

fn max_account(usd: i64, use_by_group: &[(&str, i64)]) -> FeeAccount {
    FeeAccount {
        account_id: "max".into(),
        name: "Claude Max".into(),
        fees: fee_all_month(usd),
        dedicated_to: None,
        home_group: Some("g".into()),
        use_by_group: use_by_group
            .iter()
            .map(|(g, c)| ((*g).to_owned(), *c))
            .collect(),
    }
}

fn share(s: &Statement, user: &str) -> i64 {
    s.members
        .iter()
        .find(|m| m.user_id == user)
        .map(|m| m.fee_share_usd.0)
        .unwrap_or(-1)
}

#[test]
fn equal_part_zero_half_and_one() {
    // Alice used the account three times as much as Bob; Carol nothing.
    let usage = vec![
        used("g", "max", "alice", 3 * USD),
        used("g", "max", "bob", USD),
    ];
    let acct = max_account(100, &[("g", 4 * USD)]);
    let by_use = statement(&input(0.0, vec![acct.clone()], usage.clone()));
    assert_eq!(
        (share(&by_use, "alice"), share(&by_use, "bob")),
        (7500, 2500)
    );
    assert_eq!(share(&by_use, "carol"), 0);
    let half = statement(&input(0.5, vec![acct.clone()], usage.clone()));
    assert_eq!((share(&half, "alice"), share(&half, "bob")), (6250, 3750));
    let equal = statement(&input(1.0, vec![acct], usage));
    assert_eq!((share(&equal, "alice"), share(&equal, "bob")), (5000, 5000));
    assert_eq!(equal.totals_usd.fee_share_usd, Cents(10_000));
    assert_eq!(equal.accounts[0].fee_usd, Some(Cents(10_000)));
}

#[test]
fn a_shared_fee_is_split_over_groups_by_use_and_a_dedicated_one_is_not() {
    let usage = vec![used("g", "max", "alice", USD)];
    let shared = max_account(90, &[("g", USD), ("other", 2 * USD)]);
    let s = statement(&input(0.0, vec![shared.clone()], usage.clone()));
    assert_eq!(s.accounts[0].group_part_usd, Cents(3000));
    assert_eq!(s.accounts[0].fee_usd, Some(Cents(9000)));
    assert_eq!(share(&s, "alice"), 3000);
    let mine = FeeAccount {
        dedicated_to: Some("g".into()),
        ..shared.clone()
    };
    let s = statement(&input(0.0, vec![mine], usage.clone()));
    assert_eq!(share(&s, "alice"), 9000);
    let theirs = FeeAccount {
        dedicated_to: Some("other".into()),
        ..shared
    };
    let s = statement(&input(0.0, vec![theirs], usage));
    assert_eq!(share(&s, "alice"), 0);
}

#[test]
fn accounts_without_a_fee_pass_their_cost_through() {
    let usage = vec![
        used("g", "api", "alice", 1_234_567),
        used("g", "api", "bob", 5_000),
    ];
    let s = statement(&input(0.5, vec![], usage));
    let alice = s.members.iter().find(|m| m.user_id == "alice").unwrap();
    assert_eq!(alice.pass_through_usd, Cents(123));
    assert_eq!(alice.total_usd, Cents(123));
    assert_eq!(alice.name, "ALICE");
    assert_eq!(s.accounts[0].name, "API key");
    assert_eq!(s.accounts[0].fee_usd, None);
    assert_eq!(s.accounts[0].group_part_usd, Cents(124));
    assert_eq!(s.totals_usd.total_usd, Cents(124));
    assert_eq!(s.members[0].user_id, "alice", "largest total first");
}

#[test]
fn an_unused_fee_goes_to_its_home_group_equally_or_unassigned() {
    let acct = max_account(30, &[]);
    // Bob was active on another account; the unused fee is his to bear.
    let s = statement(&input(
        0.0,
        vec![acct.clone()],
        vec![used("g", "api", "bob", 0)],
    ));
    assert_eq!(share(&s, "bob"), 3000);
    assert_eq!(s.totals_usd.unassigned_usd, Cents(0));
    let s = statement(&input(0.0, vec![acct.clone()], vec![]));
    assert_eq!(s.accounts[0].group_part_usd, Cents(3000));
    assert_eq!(s.totals_usd.unassigned_usd, Cents(3000));
    assert_eq!(s.totals_usd.total_usd, Cents(3000));
    assert!(s.members.iter().all(|m| m.total_usd == Cents(0)));
    // Another group's account nobody used is not in this group's statement.
    let elsewhere = FeeAccount {
        home_group: Some("other".into()),
        ..acct
    };
    assert!(statement(&input(0.0, vec![elsewhere], vec![]))
        .accounts
        .is_empty());
}

#[test]
fn failed_requests_do_not_make_a_member_active() {
    let mut failed = used("g", "api", "carol", 0);
    failed.errors = 1;
    let usage = vec![failed, used("g", "max", "alice", USD)];
    let s = statement(&input(1.0, vec![max_account(10, &[("g", USD)])], usage));
    assert_eq!(share(&s, "alice"), 1000);
    assert_eq!(share(&s, "carol"), 0);
}

#[test]
fn a_member_sees_their_line_and_the_totals() {
    let usage = vec![used("g", "max", "alice", USD), used("g", "max", "bob", USD)];
    let s = statement(&input(0.0, vec![max_account(10, &[("g", 2 * USD)])], usage));
    let totals = s.totals_usd.clone();
    let mine = s.for_member("bob");
    assert_eq!(mine.members.len(), 1);
    assert_eq!(mine.members[0].user_id, "bob");
    assert_eq!(mine.totals_usd, totals);
}

/// Random groups, accounts, fees and usage: every member's shares add up
/// to each group's part to the cent, the groups' parts to the fee, and the
/// totals to the lines.
#[test]
fn shares_always_add_up_to_the_cent() {
    let mut rng = SmallRng::seed_from_u64(0x0fa2e);
    let groups = ["g", "h", "i"];
    for case in 0..2_000 {
        let users: Vec<String> = (0..rng.gen_range(1..7)).map(|i| format!("u{i}")).collect();
        let n_accounts = rng.gen_range(1..5);
        let mut usage = Vec::new();
        let mut fee_accounts = Vec::new();
        for a in 0..n_accounts {
            let id = format!("a{a}");
            let mut by_group = BTreeMap::new();
            for g in groups {
                for u in &users {
                    if rng.gen_bool(0.4) {
                        let cost = match rng.gen_range(0..4) {
                            0 => 0,
                            1 => rng.gen_range(1..100),
                            _ => rng.gen_range(1..50 * USD),
                        };
                        let mut row = used(g, &id, u, cost);
                        row.requests = rng.gen_range(1..20);
                        row.errors = rng.gen_range(0..=row.requests);
                        *by_group.entry(g.to_owned()).or_insert(0) += cost;
                        usage.push(row);
                    }
                }
            }
            if rng.gen_bool(0.7) {
                let fee = rng.gen_range(0..500 * USD) + rng.gen_range(0..3);
                let from = NaiveDate::from_ymd_opt(2026, 6, rng.gen_range(1..=30)).unwrap();
                let mut fees = vec![FeeChange {
                    from,
                    fee: Some(Fee::monthly(fee)),
                }];
                if rng.gen_bool(0.3) {
                    fees.push(FeeChange {
                        from: from + chrono::Days::new(rng.gen_range(0..10)),
                        fee: None,
                    });
                }
                let home = groups[rng.gen_range(0..groups.len())].to_owned();
                fee_accounts.push(FeeAccount {
                    account_id: id,
                    name: format!("Account {a}"),
                    fees,
                    dedicated_to: rng.gen_bool(0.2).then(|| home.clone()),
                    home_group: rng.gen_bool(0.8).then_some(home),
                    use_by_group: by_group,
                });
            }
        }
        let equal_part = [0.0, 0.5, 1.0, rng.gen_range(0.0..1.0)][rng.gen_range(0..4)];
        let mut parts_by_account: BTreeMap<String, i64> = BTreeMap::new();
        for g in groups {
            let s = statement(&StatementInput {
                month: june(),
                group_id: g.into(),
                split: FareSplit { equal_part },
                fee_accounts: fee_accounts.clone(),
                account_names: BTreeMap::new(),
                usage: usage.clone(),
                members: users.iter().map(|u| (u.clone(), u.clone())).collect(),
            });
            let t = &s.totals_usd;
            let lines = |f: fn(&MemberLine) -> Cents| s.members.iter().map(f).sum::<Cents>();
            assert_eq!(lines(|m| m.fee_share_usd), t.fee_share_usd, "case {case}");
            assert_eq!(lines(|m| m.pass_through_usd), t.pass_through_usd);
            assert_eq!(lines(|m| m.total_usd), t.fee_share_usd + t.pass_through_usd);
            assert_eq!(
                t.total_usd,
                t.fee_share_usd + t.pass_through_usd + t.unassigned_usd
            );
            let bill: Cents = s.accounts.iter().map(|a| a.group_part_usd).sum();
            assert_eq!(
                bill, t.total_usd,
                "case {case}: accounts add up to the bill"
            );
            let fee_parts: Cents = s
                .accounts
                .iter()
                .filter(|a| a.fee_usd.is_some())
                .map(|a| a.group_part_usd)
                .sum();
            assert_eq!(fee_parts, t.fee_share_usd + t.unassigned_usd, "case {case}");
            assert!(s.members.iter().all(|m| m.fee_share_usd.0 >= 0));
            for a in s.accounts.iter().filter(|a| a.fee_usd.is_some()) {
                *parts_by_account.entry(a.account_id.clone()).or_default() += a.group_part_usd.0;
            }
            if equal_part == 1.0 {
                // Split equally: active members' shares differ by at most a
                // cent per fee account, and the inactive bear none.
                let is_active = |user: &str| {
                    usage
                        .iter()
                        .any(|u| u.group_id == g && u.user_id == user && u.requests > u.errors)
                };
                let (on, off): (Vec<&MemberLine>, Vec<&MemberLine>) =
                    s.members.iter().partition(|m| is_active(&m.user_id));
                if !on.is_empty() {
                    let n_fee = s.accounts.iter().filter(|a| a.fee_usd.is_some()).count() as i64;
                    let shares = on.iter().map(|m| m.fee_share_usd.0);
                    let spread = shares.clone().max().unwrap_or(0) - shares.min().unwrap_or(0);
                    assert!(spread <= n_fee, "case {case}: spread {spread}");
                    assert!(off.iter().all(|m| m.fee_share_usd.0 == 0), "case {case}");
                }
            }
        }
        // Each fee is wholly borne across the groups, unless nobody used it
        // and it has no home group.
        for fa in &fee_accounts {
            let Some(micro) = prorated_fee(&fa.fees, june()) else {
                continue;
            };
            let fee = Cents::from_micro_usd(micro).0;
            let got = parts_by_account.get(&fa.account_id).copied().unwrap_or(0);
            let anyone = fa.use_by_group.values().any(|c| *c > 0);
            let borne = fa.dedicated_to.is_some() || anyone || fa.home_group.is_some();
            assert_eq!(
                got,
                if borne { fee } else { 0 },
                "case {case}: {}",
                fa.account_id
            );
        }
    }
}

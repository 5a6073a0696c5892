//! A group's monthly statement, built from plain inputs by [`statement`].
//!
//! The function does no I/O: the caller reads the fee histories, the
//! month's usage facts and the member names, and a stored (closed)
//! statement is this function's answer frozen.
//!
//! Where a fee goes when nobody used its account that month: to the
//! account's home group (the group it is dedicated to, else the group that
//! owns it), split equally among that group's active members; when that
//! group had no active member either, the part stays in the account line
//! and in `totalsUsd.unassignedUsd`, and no member line carries it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::split::largest_remainder;
use super::{prorated_fee, Cents, FareUse, FeeChange, Month};
use crate::carpool::FareSplit;

/// `equalPart` in millionths, so the split runs on integers.
const PPM: i128 = 1_000_000;

/// A fee account as the statement of one group needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeeAccount {
    pub account_id: String,
    pub name: String,
    /// Oldest first.
    pub fees: Vec<FeeChange>,
    /// The group the account belongs to wholly: dedicated to it in its
    /// binding, or owned by it and bound by no other group.
    pub dedicated_to: Option<String>,
    /// The group that bears the fee when nobody used the account: the one
    /// it is dedicated to, else its owner group.
    pub home_group: Option<String>,
    /// Every group's list-price use of the account that month.
    pub use_by_group: BTreeMap<String, i64>,
}

/// What [`statement`] is built from.
#[derive(Debug, Clone)]
pub struct StatementInput {
    pub month: Month,
    pub group_id: String,
    pub split: FareSplit,
    /// Accounts that may carry a fee this month (the group used them, or
    /// they are its own). One without a fee on any day of the month passes
    /// its cost through like any other.
    pub fee_accounts: Vec<FeeAccount>,
    /// Names of the other accounts the group used.
    pub account_names: BTreeMap<String, String>,
    /// The group's month of usage facts, per account and member.
    pub usage: Vec<FareUse>,
    /// User id → name, for the current members (a line each, used or not)
    /// and for anyone else the usage names.
    pub members: BTreeMap<String, String>,
}

/// One account's part of a group's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountLine {
    pub account_id: String,
    pub name: String,
    /// The account's prorated fee for the month, over every group it
    /// served; `null` for an account without a fee (its cost passes through).
    pub fee_usd: Option<Cents>,
    /// What this group pays for it: its part of the fee, or for an account
    /// without a fee, its list-price use.
    pub group_part_usd: Cents,
    /// The group's use of it at list price.
    pub usage_usd: Cents,
}

/// One member's part of a group's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberLine {
    pub user_id: String,
    pub name: String,
    /// Their use at list price, over every account.
    pub usage_usd: Cents,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Their share of the fees of the group's fee accounts.
    pub fee_share_usd: Cents,
    /// Their list-price use of accounts without a fee.
    pub pass_through_usd: Cents,
    /// `feeShareUsd + passThroughUsd`.
    pub total_usd: Cents,
}

/// The sums of a statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub usage_usd: Cents,
    pub fee_share_usd: Cents,
    pub pass_through_usd: Cents,
    /// Fee parts no member bears (see the module docs).
    pub unassigned_usd: Cents,
    /// `feeShareUsd + passThroughUsd + unassignedUsd`: the group's bill,
    /// also the sum of the account lines' `groupPartUsd`.
    pub total_usd: Cents,
}

/// A group's fare for a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    pub month: Month,
    /// Stored for good: the month has ended, or an owner closed it early.
    pub closed: bool,
    pub accounts: Vec<AccountLine>,
    pub members: Vec<MemberLine>,
    pub totals_usd: Totals,
}

impl Statement {
    /// The statement as a plain member sees it: their own line (if any)
    /// and the totals.
    pub fn for_member(mut self, user_id: &str) -> Self {
        self.members.retain(|m| m.user_id == user_id);
        self
    }
}

/// A member's sums over the group's usage.
#[derive(Debug, Default)]
struct MemberSums {
    cost: i64,
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    fee_share: Cents,
    pass_through: Cents,
}

/// Builds the group's statement (not closed) for `input.month`.
pub fn statement(input: &StatementInput) -> Statement {
    let group = input.group_id.as_str();
    let usage = input.usage.iter().filter(|u| u.group_id == group);

    let mut sums: BTreeMap<&str, MemberSums> = input
        .members
        .keys()
        .map(|id| (id.as_str(), MemberSums::default()))
        .collect();
    let mut active: BTreeSet<&str> = BTreeSet::new();
    // account → member → list-price use.
    let mut use_of: BTreeMap<Option<&str>, BTreeMap<&str, i64>> = BTreeMap::new();
    for u in usage {
        let s = sums.entry(u.user_id.as_str()).or_default();
        s.cost += u.cost_micro_usd;
        s.requests += u.requests;
        s.input_tokens += u.input_tokens;
        s.output_tokens += u.output_tokens;
        if u.requests > u.errors {
            active.insert(u.user_id.as_str());
        }
        *use_of
            .entry(u.account_id.as_deref())
            .or_default()
            .entry(u.user_id.as_str())
            .or_default() += u.cost_micro_usd;
    }

    let mut accounts = Vec::new();
    let mut unassigned = Cents(0);
    let mut fee_ids = BTreeSet::new();
    for fa in &input.fee_accounts {
        let Some(fee_micro) = prorated_fee(&fa.fees, input.month) else {
            continue;
        };
        fee_ids.insert(fa.account_id.as_str());
        let fee = Cents::from_micro_usd(fee_micro);
        let members_use = use_of.get(&Some(fa.account_id.as_str()));
        let group_use: i64 = members_use.map(|m| m.values().sum()).unwrap_or(0);
        let part = group_part(fa, fee, group);
        if part == Cents(0) && group_use == 0 && fa.home_group.as_deref() != Some(group) {
            continue;
        }
        let empty = BTreeMap::new();
        let shares = split_in_group(
            part,
            members_use.unwrap_or(&empty),
            &active,
            input.split.equal_part,
        );
        match shares {
            Some(shares) => {
                for (user, c) in shares {
                    sums.entry(user).or_default().fee_share += c;
                }
            }
            None => unassigned += part,
        }
        accounts.push(AccountLine {
            account_id: fa.account_id.clone(),
            name: fa.name.clone(),
            fee_usd: Some(fee),
            group_part_usd: part,
            usage_usd: Cents::from_micro_usd(group_use),
        });
    }

    for (account, members_use) in &use_of {
        if account.is_some_and(|a| fee_ids.contains(a)) {
            continue;
        }
        let group_use: i64 = members_use.values().sum();
        let cost = Cents::from_micro_usd(group_use);
        let users: Vec<&str> = members_use.keys().copied().collect();
        let weights: Vec<i128> = members_use.values().map(|c| i128::from(*c)).collect();
        for (user, c) in users.into_iter().zip(largest_remainder(cost.0, &weights)) {
            sums.entry(user).or_default().pass_through += Cents(c);
        }
        // Requests no account was tried for have no line (and cost nothing).
        if let Some(id) = account {
            accounts.push(AccountLine {
                account_id: (*id).to_owned(),
                name: input
                    .account_names
                    .get(*id)
                    .cloned()
                    .unwrap_or_else(|| (*id).to_owned()),
                fee_usd: None,
                group_part_usd: cost,
                usage_usd: cost,
            });
        }
    }
    accounts.sort_by(|a, b| (&a.name, &a.account_id).cmp(&(&b.name, &b.account_id)));

    let mut members: Vec<MemberLine> = sums
        .into_iter()
        .map(|(id, s)| MemberLine {
            user_id: id.to_owned(),
            name: input
                .members
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_owned()),
            usage_usd: Cents::from_micro_usd(s.cost),
            requests: s.requests,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            fee_share_usd: s.fee_share,
            pass_through_usd: s.pass_through,
            total_usd: s.fee_share + s.pass_through,
        })
        .collect();
    members.sort_by(|a, b| {
        b.total_usd
            .cmp(&a.total_usd)
            .then_with(|| (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id)))
    });

    let fee_share: Cents = members.iter().map(|m| m.fee_share_usd).sum();
    let pass_through: Cents = members.iter().map(|m| m.pass_through_usd).sum();
    Statement {
        month: input.month,
        closed: false,
        totals_usd: Totals {
            usage_usd: members.iter().map(|m| m.usage_usd).sum(),
            fee_share_usd: fee_share,
            pass_through_usd: pass_through,
            unassigned_usd: unassigned,
            total_usd: fee_share + pass_through + unassigned,
        },
        accounts,
        members,
    }
}

/// `group`'s part of an account's fee: all of it when the account is
/// dedicated to the group, none when dedicated to another; else by the
/// groups' use of it (the cents handed out by largest remainder over the
/// groups in id order, so every group's statement agrees); all of it for
/// the home group when nobody used it.
fn group_part(fa: &FeeAccount, fee: Cents, group: &str) -> Cents {
    if let Some(owner) = &fa.dedicated_to {
        return if owner == group { fee } else { Cents(0) };
    }
    let used: Vec<(&String, &i64)> = fa.use_by_group.iter().filter(|(_, c)| **c > 0).collect();
    if used.is_empty() {
        return match fa.home_group.as_deref() == Some(group) {
            true => fee,
            false => Cents(0),
        };
    }
    let weights: Vec<i128> = used.iter().map(|(_, c)| i128::from(**c)).collect();
    let parts = largest_remainder(fee.0, &weights);
    used.iter()
        .zip(parts)
        .find(|((g, _), _)| g.as_str() == group)
        .map(|(_, c)| Cents(c))
        .unwrap_or_default()
}

/// Splits a group's part of one account among its members: `equal_part`
/// equally among the active members, the rest by each member's use of the
/// account, in one largest-remainder pass over the combined weights so the
/// shares add up to `part`. With no use of the account, all of it goes
/// equally; with no active member, all of it by use. `None` when there is
/// neither: nobody bears it.
fn split_in_group<'a>(
    part: Cents,
    use_by_member: &BTreeMap<&'a str, i64>,
    active: &BTreeSet<&'a str>,
    equal_part: f64,
) -> Option<Vec<(&'a str, Cents)>> {
    let equal = (equal_part.clamp(0.0, 1.0) * PPM as f64).round() as i128;
    let people: BTreeSet<&str> = active
        .iter()
        .copied()
        .chain(
            use_by_member
                .iter()
                .filter(|(_, c)| **c > 0)
                .map(|(u, _)| *u),
        )
        .collect();
    let total_use: i128 = use_by_member.values().map(|c| i128::from(*c).max(0)).sum();
    let n = active.len() as i128;
    let weight = |user: &str| -> i128 {
        let is_active = i128::from(active.contains(user));
        let used = i128::from(use_by_member.get(user).copied().unwrap_or(0)).max(0);
        match (n > 0, total_use > 0) {
            // Equal part: equal/N each; use part: (1 - equal) * used/total.
            // Over the common denominator N * total * PPM.
            (true, true) => equal * is_active * total_use + (PPM - equal) * used * n,
            (true, false) => is_active,
            (false, true) => used,
            (false, false) => 0,
        }
    };
    if n == 0 && total_use == 0 {
        return None;
    }
    let users: Vec<&str> = people.into_iter().collect();
    let weights: Vec<i128> = users.iter().map(|u| weight(u)).collect();
    let shares = largest_remainder(part.0, &weights);
    Some(
        users
            .into_iter()
            .zip(shares.into_iter().map(Cents))
            .collect(),
    )
}

#[cfg(test)]
mod tests;

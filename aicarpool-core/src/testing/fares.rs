//! Conformance checks: account fees, the month's use, closed statements.

use chrono::NaiveDate;

use super::usage::usage_record;
use super::*;
use crate::fare::{Cents, FareUse, Fee, FeeChange, MemberLine, Month, Statement, Totals};
use crate::store::FareUseScope;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A fee history keeps one change per day, oldest first, and goes with
/// its account.
pub async fn fees<S: Store + ?Sized>(store: &S) {
    let (_, group) = setup_group(store).await;
    let a = account(AccountOwner::Group(group.id.clone()));
    store.create_account(&a).await.unwrap();
    assert!(store.fee_history(&a.id).await.unwrap().is_empty());
    let set = |from, fee| FeeChange { from, fee };
    let later = set(day(2030, 5, 20), None);
    let first = set(day(2030, 5, 1), Some(Fee::monthly(200_000_000)));
    let replaced = set(day(2030, 5, 1), Some(Fee::monthly(19_990_001)));
    for c in [&later, &first, &replaced] {
        store.set_fee(&a.id, c).await.unwrap();
    }
    assert_eq!(
        store.fee_history(&a.id).await.unwrap(),
        vec![replaced, later]
    );
    assert!(matches!(
        store.set_fee(&new_id(), &first).await,
        Err(StoreError::NotFound)
    ));
    store.delete_account(&a.id).await.unwrap();
    assert!(store.fee_history(&a.id).await.unwrap().is_empty());
}

/// The month's use sums records and rollups alike, per group, account and
/// user, within `[from, to)`; folding records into rollups changes nothing.
pub async fn fare_use<S: Store + ?Sized>(store: &S) {
    let (g, g2, u1, u2, key, a, b) = (
        new_id(),
        new_id(),
        new_id(),
        new_id(),
        new_id(),
        new_id(),
        new_id(),
    );
    // Before the request log's retention check (1999-12-31), whose records
    // this check's own folding must not reach; its folding of these is
    // harmless, as folding never changes a sum.
    let from = Utc.with_ymd_and_hms(1998, 3, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(1998, 4, 1, 0, 0, 0).unwrap();
    let at = |h| from + Duration::hours(h);
    let mut failed = usage_record(&g, &u1, &key, Some(&a), at(30));
    failed.status = 529;
    failed.cost_micro_usd = 0;
    let records = vec![
        usage_record(&g, &u1, &key, Some(&a), at(1)),
        usage_record(&g, &u1, &key, Some(&a), at(2)),
        failed,
        usage_record(&g, &u2, &key, Some(&a), at(3)),
        usage_record(&g, &u2, &key, Some(&b), at(400)),
        usage_record(&g, &u2, &key, None, at(401)),
        usage_record(&g2, &u1, &key, Some(&a), at(5)),
        // Outside the month on either side.
        usage_record(&g, &u1, &key, Some(&a), from - Duration::milliseconds(1)),
        usage_record(&g, &u1, &key, Some(&a), to),
    ];
    store.insert_usage(&records).await.unwrap();
    let row = |group: &str, account: Option<&str>, user: &str, n: u64, errors: u64| FareUse {
        group_id: group.to_owned(),
        account_id: account.map(str::to_owned),
        user_id: user.to_owned(),
        cost_micro_usd: 4321 * (n - errors) as i64,
        requests: n,
        errors,
        input_tokens: 1200 * n,
        output_tokens: 340 * n,
    };
    let mut of_group = vec![
        row(&g, Some(&a), &u1, 3, 1),
        row(&g, Some(&a), &u2, 1, 0),
        row(&g, Some(&b), &u2, 1, 0),
        row(&g, None, &u2, 1, 0),
    ];
    crate::store::sort_fare_use(&mut of_group);
    let mut of_account = vec![
        row(&g, Some(&a), &u1, 3, 1),
        row(&g, Some(&a), &u2, 1, 0),
        row(&g2, Some(&a), &u1, 1, 0),
    ];
    crate::store::sort_fare_use(&mut of_account);
    let group_scope = FareUseScope::Group(g.clone());
    let account_scope = FareUseScope::Accounts(vec![a.clone(), new_id()]);
    for pass in ["records", "rollups"] {
        assert_eq!(
            store.fare_use(&group_scope, from, to).await.unwrap(),
            of_group,
            "{pass}"
        );
        assert_eq!(
            store.fare_use(&account_scope, from, to).await.unwrap(),
            of_account,
            "{pass}"
        );
        // Everything this check wrote before mid-month becomes rollups.
        store.roll_up_before(at(24 * 20)).await.unwrap();
    }
    let none = FareUseScope::Accounts(Vec::new());
    assert!(store.fare_use(&none, from, to).await.unwrap().is_empty());
}

fn sample_statement(month: Month, fee_share: i64) -> Statement {
    Statement {
        month,
        closed: true,
        accounts: vec![crate::fare::AccountLine {
            account_id: new_id(),
            name: "Claude Max ✓".into(),
            fee_usd: Some(Cents(20_000)),
            group_part_usd: Cents(fee_share),
            usage_usd: Cents(12_345),
        }],
        members: vec![MemberLine {
            user_id: new_id(),
            name: "Åsa".into(),
            usage_usd: Cents(12_345),
            requests: 17,
            input_tokens: 1 << 40,
            output_tokens: 3,
            fee_share_usd: Cents(fee_share),
            pass_through_usd: Cents(1),
            total_usd: Cents(fee_share + 1),
        }],
        totals_usd: Totals {
            usage_usd: Cents(12_345),
            fee_share_usd: Cents(fee_share),
            pass_through_usd: Cents(1),
            unassigned_usd: Cents(0),
            total_usd: Cents(fee_share + 1),
        },
    }
}

/// A closed statement is stored once: a second close keeps the first and
/// answers it; it goes with its group.
pub async fn closed_statements<S: Store + ?Sized>(store: &S) {
    let (_, group) = setup_group(store).await;
    let month = Month::parse("2030-02").unwrap();
    assert_eq!(
        store.closed_statement(&group.id, month).await.unwrap(),
        None
    );
    let first = sample_statement(month, 9_999);
    let kept = store
        .close_statement(&group.id, &first, now_ms())
        .await
        .unwrap();
    assert_eq!(kept, first);
    let second = sample_statement(month, 1);
    let kept = store
        .close_statement(&group.id, &second, now_ms())
        .await
        .unwrap();
    assert_eq!(kept, first, "the first close wins");
    assert_eq!(
        store.closed_statement(&group.id, month).await.unwrap(),
        Some(first)
    );
    assert_eq!(
        store
            .closed_statement(&group.id, month.next())
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store.close_statement(&new_id(), &second, now_ms()).await,
        Err(StoreError::NotFound)
    ));
    store.delete_group(&group.id).await.unwrap();
    assert_eq!(
        store.closed_statement(&group.id, month).await.unwrap(),
        None
    );
}

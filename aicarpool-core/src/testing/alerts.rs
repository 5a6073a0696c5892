//! Conformance checks: alert rules and their told events.

use super::*;
use crate::alert::{AlertKind, AlertOwner, AlertRule, AlertTarget};

fn rule(owner: AlertOwner, kind: AlertKind, threshold: Option<f64>) -> AlertRule {
    AlertRule {
        id: new_id(),
        owner,
        kind,
        target: AlertTarget::parse("https://hooks.example.com/aicarpool?x=1").unwrap(),
        threshold,
        secret: Sealed(vec![1, 0, 255, 7]),
        created_by: new_id(),
        created_at: now_ms(),
    }
}

/// Rules round-trip by owner, an event is claimed once per rule, and a
/// deleted owner takes its rules along.
pub async fn alerts<S: Store + ?Sized>(store: &S) {
    let (_, group) = setup_group(store).await;
    let (_, ent) = enterprise::setup_enterprise(store).await;
    let g = AlertOwner::Group(group.id.clone());
    let e = AlertOwner::Enterprise(ent.id.clone());
    let budget = rule(g.clone(), AlertKind::Budget, Some(0.85));
    let mut mail = rule(g.clone(), AlertKind::KeyExpiry, None);
    mail.target = AlertTarget::Email("ops@example.com".into());
    mail.created_at = budget.created_at + Duration::milliseconds(1);
    let window = rule(e.clone(), AlertKind::Window, Some(0.9));
    for r in [&budget, &mail, &window] {
        store.create_alert(r).await.unwrap();
    }
    let orphan = rule(AlertOwner::Group(new_id()), AlertKind::Account, None);
    assert!(matches!(
        store.create_alert(&orphan).await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(store.alert(&budget.id).await.unwrap(), Some(budget.clone()));
    assert_eq!(
        store.alerts_of(&g).await.unwrap(),
        vec![budget.clone(), mail.clone()]
    );
    assert_eq!(store.alerts_of(&e).await.unwrap(), vec![window.clone()]);
    let all = store.all_alerts().await.unwrap();
    assert!(all.contains(&budget) && all.contains(&window));

    let at = now_ms();
    assert!(store.claim_alert_event(&budget.id, "k1", at).await.unwrap());
    assert!(
        !store.claim_alert_event(&budget.id, "k1", at).await.unwrap(),
        "once"
    );
    assert!(store.claim_alert_event(&budget.id, "k2", at).await.unwrap());
    assert!(
        store.claim_alert_event(&mail.id, "k1", at).await.unwrap(),
        "per rule"
    );

    store.delete_alert(&mail.id).await.unwrap();
    store.delete_alert(&mail.id).await.unwrap();
    assert_eq!(store.alert(&mail.id).await.unwrap(), None);
    assert!(store.claim_alert_event(&mail.id, "k3", at).await.is_err());

    store.delete_group(&group.id).await.unwrap();
    assert!(store.alerts_of(&g).await.unwrap().is_empty());
    assert_eq!(store.alert(&budget.id).await.unwrap(), None);
    store.delete_enterprise(&ent.id).await.unwrap();
    assert_eq!(store.alert(&window.id).await.unwrap(), None);
}

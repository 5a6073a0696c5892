//! Conformance checks: accounts and bindings.

use super::*;

/// Accounts: every field and enum value round-trips; listing; update; delete.
pub async fn accounts<S: Store + ?Sized>(store: &S) {
    let (_, g) = setup_group(store).await;
    let owner = AccountOwner::Group(g.id.clone());
    let t0 = now_ms();

    let full = Account {
        created_at: t0,
        ..account(owner.clone())
    };
    let minimal = Account {
        id: new_id(),
        name: String::new(),
        platform: Platform::ClaudeApi,
        preset: None,
        base_url: None,
        models: Vec::new(),
        model_map: BTreeMap::new(),
        serves: Vec::new(),
        priority: 0,
        weight: 0,
        max_concurrency: None,
        proxy: None,
        enabled: true,
        credentials: Sealed::default(),
        created_at: t0 + Duration::milliseconds(1),
        ..account(owner.clone())
    };
    let enterprise = account(AccountOwner::Enterprise(new_id()));
    for a in [&full, &minimal, &enterprise] {
        store.create_account(a).await.unwrap();
        assert_eq!(store.account(&a.id).await.unwrap().as_ref(), Some(a));
    }

    let platforms = [
        Platform::ClaudeOauth,
        Platform::ClaudeApi,
        Platform::AnthropicCompatible,
        Platform::Gemini,
        Platform::OpenaiCompatible,
    ];
    let presets = [
        None,
        Some(Preset::Kimi),
        Some(Preset::Qwen),
        Some(Preset::Glm),
        Some(Preset::Deepseek),
        Some(Preset::Custom),
    ];
    let mut owned = vec![full.clone(), minimal.clone()];
    // Every platform and every preset, so each enum value round-trips.
    for (i, preset) in presets.into_iter().enumerate() {
        let a = Account {
            platform: platforms[i % platforms.len()],
            preset,
            created_at: t0 + Duration::milliseconds(2 + i as i64),
            ..account(owner.clone())
        };
        store.create_account(&a).await.unwrap();
        assert_eq!(store.account(&a.id).await.unwrap(), Some(a.clone()));
        owned.push(a);
    }

    assert_eq!(
        store.accounts_of_group(&g.id).await.unwrap(),
        owned,
        "group-owned accounts, oldest first; enterprise accounts excluded"
    );
    assert!(store.accounts_of_group(&new_id()).await.unwrap().is_empty());
    expect_conflict(store.create_account(&full).await, "duplicate account id");

    let mut changed = full.clone();
    changed.name = "renamed".into();
    changed.platform = Platform::Gemini;
    changed.preset = None;
    changed.base_url = None;
    changed.models = vec!["gemini-*".into()];
    changed.model_map = BTreeMap::from([("a".into(), "b".into())]);
    changed.priority = 9;
    changed.weight = 1;
    changed.max_concurrency = None;
    changed.proxy = None;
    changed.enabled = true;
    changed.credentials = Sealed(vec![0, 1, 0, 2]);
    changed.updated_at = t0 + Duration::minutes(5);
    store.update_account(&changed).await.unwrap();
    assert_eq!(store.account(&full.id).await.unwrap(), Some(changed));
    let mut back = minimal.clone();
    back.base_url = Some("http://localhost:8080".into());
    back.max_concurrency = Some(0);
    back.credentials = Sealed(vec![7; 4096]);
    store.update_account(&back).await.unwrap();
    assert_eq!(store.account(&minimal.id).await.unwrap(), Some(back));

    let ghost = account(owner);
    expect_not_found(store.update_account(&ghost).await, "update missing account");
    assert_eq!(store.account(&ghost.id).await.unwrap(), None);
    store.delete_account(&enterprise.id).await.unwrap();
    assert_eq!(store.account(&enterprise.id).await.unwrap(), None);
    expect_not_found(store.delete_account(&enterprise.id).await, "delete twice");
}

pub(super) fn bound(account_id: &str, dedicated: bool) -> BoundAccount {
    BoundAccount {
        account_id: account_id.to_owned(),
        priority: None,
        weight: None,
        dedicated,
    }
}

/// Bindings: replace, read back in order, reverse lookup, account deletion.
pub async fn bindings<S: Store + ?Sized>(store: &S) {
    let (_, g1) = setup_group(store).await;
    let (_, g2) = setup_group(store).await;
    let a1 = account(AccountOwner::Group(g1.id.clone()));
    let a2 = account(AccountOwner::Enterprise(new_id()));
    let a3 = account(AccountOwner::Enterprise(new_id()));
    for a in [&a1, &a2, &a3] {
        store.create_account(a).await.unwrap();
    }
    assert_eq!(store.binding(&g1.id).await.unwrap(), None);

    let b1 = Binding {
        group_id: g1.id.clone(),
        mode: BindingMode::Hybrid,
        accounts: vec![
            BoundAccount {
                priority: Some(-1),
                weight: Some(3),
                ..bound(&a1.id, true)
            },
            bound(&a2.id, false),
        ],
    };
    let b2 = Binding {
        group_id: g2.id.clone(),
        mode: BindingMode::Shared,
        accounts: vec![bound(&a3.id, false), bound(&a2.id, false)],
    };
    store.put_binding(&b1).await.unwrap();
    store.put_binding(&b2).await.unwrap();
    assert_eq!(store.binding(&g1.id).await.unwrap(), Some(b1.clone()));
    assert_eq!(
        store.binding(&g2.id).await.unwrap(),
        Some(b2.clone()),
        "order kept"
    );
    assert_eq!(
        sorted(store.bindings_of_account(&a2.id).await.unwrap()),
        sorted(vec![(g1.id.clone(), false), (g2.id.clone(), false)])
    );
    assert_eq!(
        store.bindings_of_account(&a1.id).await.unwrap(),
        vec![(g1.id.clone(), true)]
    );

    let replaced = Binding {
        group_id: g1.id.clone(),
        mode: BindingMode::Dedicated,
        accounts: vec![bound(&a3.id, true)],
    };
    store.put_binding(&replaced).await.unwrap();
    assert_eq!(store.binding(&g1.id).await.unwrap(), Some(replaced));
    assert!(store.bindings_of_account(&a1.id).await.unwrap().is_empty());
    assert_eq!(
        sorted(store.bindings_of_account(&a3.id).await.unwrap()),
        sorted(vec![(g1.id.clone(), true), (g2.id.clone(), false)])
    );

    store.delete_account(&a3.id).await.unwrap();
    assert!(store.bindings_of_account(&a3.id).await.unwrap().is_empty());
    assert_eq!(
        store.binding(&g1.id).await.unwrap().map(|b| b.accounts),
        Some(vec![]),
        "the binding stays, without the deleted account"
    );
    assert_eq!(
        store.binding(&g2.id).await.unwrap().map(|b| b.accounts),
        Some(vec![bound(&a2.id, false)])
    );

    let empty = Binding {
        group_id: g2.id.clone(),
        mode: BindingMode::Shared,
        accounts: vec![],
    };
    store.put_binding(&empty).await.unwrap();
    assert_eq!(store.binding(&g2.id).await.unwrap(), Some(empty));
    assert_eq!(store.binding(&new_id()).await.unwrap(), None);
    assert!(store
        .bindings_of_account(&new_id())
        .await
        .unwrap()
        .is_empty());
}

//! An account ready to call, for the providers' unit tests.

use crate::account::{Account, AccountOwner, Credentials, Platform, Preset};
use crate::router::RoutableAccount;
use crate::secret::Sealed;

pub(crate) fn routable(platform: Platform, preset: Option<Preset>) -> RoutableAccount {
    let now = chrono::Utc::now();
    let account = Account {
        id: "acc1".into(),
        name: "a".into(),
        platform,
        preset,
        base_url: None,
        owner: AccountOwner::Group("g".into()),
        models: vec![],
        model_map: Default::default(),
        serves: Vec::new(),
        priority: 50,
        weight: 1,
        max_concurrency: None,
        proxy: None,
        enabled: true,
        credentials: Sealed::default(),
        created_at: now,
        updated_at: now,
    };
    let base_url = account.effective_base_url().unwrap_or_default();
    RoutableAccount {
        account,
        credentials: Credentials {
            api_key: Some("upstream-secret".into()),
            ..Default::default()
        },
        base_url,
        in_flight: Default::default(),
    }
}

//! Where an account's requests go, before and after an edit: whether the
//! edit sends its credentials somewhere new, and what the audit log says.

use aicarpool_core::account::Account;
use aicarpool_core::provider::proxy;
use serde_json::{json, Value};

use crate::api::views::mask_url_password;

/// The parts of an account that decide where its key is sent.
#[derive(Debug)]
pub struct Destination {
    base_url: Change<Option<String>>,
    preset: Option<(Option<String>, Option<String>)>,
    proxy: Change<Option<String>>,
}

type Change<T> = Option<(T, T)>;

impl Destination {
    /// Compares the account before and after the edit. A proxy sent in
    /// the body counts as a change unless it is the stored one without a
    /// password (a password cannot be compared: the old one is sealed).
    pub fn change(
        before: &Account,
        after: &Account,
        proxy_in_body: bool,
        new_proxy_password: bool,
    ) -> Self {
        let base = (before.effective_base_url(), after.effective_base_url());
        let preset = |a: &Account| a.preset.map(|p| format!("{p:?}").to_lowercase());
        let presets = (preset(before), preset(after));
        let stored_proxy = |a: &Account| a.proxy.as_deref().map(|p| proxy::split_password(p).0);
        let proxies = (stored_proxy(before), stored_proxy(after));
        let proxy_changed = proxy_in_body && (proxies.0 != proxies.1 || new_proxy_password);
        Self {
            base_url: (base.0 != base.1).then_some(base),
            preset: (presets.0 != presets.1).then_some(presets),
            proxy: proxy_changed.then_some(proxies),
        }
    }

    /// Whether the credentials would now go somewhere else.
    pub fn changed(&self) -> bool {
        self.base_url.is_some() || self.preset.is_some() || self.proxy.is_some()
    }

    /// The audit entry's details: the fields changed, the old and new URL
    /// and proxy with any password masked, and whether the credentials
    /// were dropped.
    pub fn audit(&self, fields: Vec<&'static str>, credentials_dropped: bool) -> Value {
        let masked = |v: &Option<String>| v.as_deref().map(mask_url_password);
        let mut out = json!({"fields": fields});
        if let Some((from, to)) = &self.base_url {
            out["baseUrl"] = json!({"from": masked(from), "to": masked(to)});
        }
        if let Some((from, to)) = &self.preset {
            out["preset"] = json!({"from": from, "to": to});
        }
        if let Some((from, to)) = &self.proxy {
            out["proxy"] = json!({"from": masked(from), "to": masked(to)});
        }
        if credentials_dropped {
            out["credentialsDropped"] = json!(true);
        }
        out
    }
}

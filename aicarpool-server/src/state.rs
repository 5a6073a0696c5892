//! Shared state handed to every handler.

use std::sync::Arc;

use aicarpool_core::gateway::Gateway;
use aicarpool_core::secret::Sealer;
use aicarpool_core::store::DynStore;

use crate::config::ServeConfig;
use crate::mail::Mailer;

/// Cheap to clone: everything inside is shared.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: DynStore,
    pub sealer: Sealer,
    pub gateway: Gateway,
    pub config: Arc<ServeConfig>,
    /// Sends invitation mail; `None` without `AICARPOOL_SMTP_URL`.
    pub mailer: Option<Mailer>,
    /// Claude sign-ins started and not yet finished (in Redis when
    /// several instances share one).
    pub oauth_logins: Arc<crate::api::oauth::Logins>,
    /// Failed sign-ins and registrations counted per email and client.
    pub sign_in: Arc<crate::api::throttle::SignInGuard>,
}

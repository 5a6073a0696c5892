//! Webhook delivery: a JSON POST signed with the rule's secret.

use aicarpool_core::alert::AlertRule;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::state::AppState;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-aicarpool-signature";

/// The signature header's value for `body` under `secret`: what a
/// receiver computes to check a delivery is ours and whole.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Posts `payload` to `url`; a 2xx answer is a delivery.
pub(super) async fn webhook(
    state: &AppState,
    http: &reqwest::Client,
    rule: &AlertRule,
    url: &str,
    payload: &impl serde::Serialize,
) -> Result<(), String> {
    // Checked again at each send: the guard's setting may have changed.
    state
        .config
        .upstream_allow
        .check_url(url)
        .map_err(|e| format!("target not allowed: {e}"))?;
    let secret = state
        .sealer
        .open_bytes(&AlertRule::secret_aad(&rule.id), &rule.secret.0)
        .map_err(|_| "the rule's secret cannot be opened".to_owned())?;
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let resp = http
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(&secret, &body))
        .header("x-aicarpool-alert", rule.kind.as_str())
        .body(body)
        .send()
        .await
        // The cause chain names a denied address; the URL itself is the
        // owner's and safe to log.
        .map_err(|e| format!("{e:#}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

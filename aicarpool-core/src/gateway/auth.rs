//! Authenticating member keys, with a cache in front of the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{HeaderMap, Uri};

use super::{GatewayError, Inner};
use crate::key::{KeyRecord, MemberKey};

/// The key as presented: `Authorization: Bearer`, `x-api-key`,
/// `x-goog-api-key` or `?key=`, in that order.
pub(super) fn presented_key<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(auth) = header("authorization") {
        let (scheme, rest) = auth.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
    }
    header("x-api-key")
        .or_else(|| header("x-goog-api-key"))
        .map(str::trim)
        .or_else(|| {
            uri.query()?
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
        })
}

impl Inner {
    /// Finds the member key's record: parse, hash, look up (cached), then
    /// check in constant time that hash, group and user all agree.
    pub(super) async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Arc<KeyRecord>, GatewayError> {
        let presented = presented_key(headers, uri).ok_or_else(|| {
            GatewayError::Authentication(
                "missing member key: send it as `x-api-key` or `Authorization: Bearer`".into(),
            )
        })?;
        let key = MemberKey::parse(presented)
            .map_err(|e| GatewayError::Authentication(format!("invalid member key: {e}")))?;
        let hash = key.hash();
        let record = match self.keys.get(&hash) {
            Some(r) => r,
            None => {
                let generation = self.cache_generation.load(Ordering::Acquire);
                let found = self
                    .store
                    .key_by_hash(&hash)
                    .await
                    .map_err(|e| GatewayError::Internal(format!("key lookup failed: {e}")))?
                    .map(Arc::new);
                let Some(found) = found else {
                    return Err(unknown_key());
                };
                if self.cache_generation.load(Ordering::Acquire) == generation {
                    self.keys.insert(hash, found.clone());
                }
                found
            }
        };
        let hash_matches = record.key_hash.is_some_and(|h| h.ct_eq(&hash));
        if !hash_matches || record.group_id != key.group_id() || record.user_id != key.user_id() {
            return Err(unknown_key());
        }
        Ok(record)
    }
}

fn unknown_key() -> GatewayError {
    GatewayError::Authentication("invalid member key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_in_order() {
        let uri: Uri = "/v1/messages?beta=true&key=aicp_q".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h, &uri), Some("aicp_q"));
        h.insert("x-goog-api-key", "aicp_g".parse().unwrap());
        assert_eq!(presented_key(&h, &uri), Some("aicp_g"));
        h.insert("x-api-key", "aicp_x".parse().unwrap());
        assert_eq!(presented_key(&h, &uri), Some("aicp_x"));
        h.insert("authorization", "Bearer aicp_b".parse().unwrap());
        assert_eq!(presented_key(&h, &uri), Some("aicp_b"));
    }
}

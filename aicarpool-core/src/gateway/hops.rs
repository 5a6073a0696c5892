//! The hop mark: how a request that already passed through this gateway
//! (or through too many gateways) is told apart and refused.
//!
//! Every upstream call carries `x-aicarpool-hop`, a comma-separated list of
//! the deployment ids it went through, this one last. An account whose base
//! URL leads back here (directly or through other gateways) would otherwise
//! turn one request into thousands, each holding a connection and a file
//! descriptor, until the server runs out of both. With the mark, the request
//! comes back once, is refused, and the refusal travels back as one error.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::GatewayError;

/// The request header holding the deployments a request went through.
pub const HOP_HEADER: HeaderName = HeaderName::from_static("x-aicarpool-hop");

/// Gateways a request may pass before the next one refuses it: enough for
/// a team gateway in front of an enterprise one, not for a cycle.
pub const MAX_HOPS: usize = 3;

/// The mark for the next upstream call of a request arriving with
/// `headers`: the deployments it went through, then `own`. Refused when
/// `own` is among them (a loop) or the list is full.
pub fn next_hop(headers: &HeaderMap, own: &str) -> Result<HeaderValue, GatewayError> {
    let mut seen = 0;
    let mut chain = String::new();
    for value in headers.get_all(&HOP_HEADER) {
        // A mark that is not text is no deployment's; it still counts.
        let text = value.to_str().unwrap_or("?");
        for id in text.split(',').map(str::trim).filter(|id| !id.is_empty()) {
            if id == own {
                return Err(GatewayError::LoopDetected(
                    "this request already passed through this gateway: an account's base URL \
                     leads back to the gateway itself"
                        .into(),
                ));
            }
            seen += 1;
            if seen >= MAX_HOPS {
                return Err(GatewayError::LoopDetected(format!(
                    "this request already passed through {MAX_HOPS} gateways"
                )));
            }
            let id = clip_id(id);
            chain.push_str(if id.is_empty() { "unknown" } else { &id });
            chain.push(',');
        }
    }
    chain.push_str(own);
    HeaderValue::from_str(&chain).map_err(|_| GatewayError::Internal("hop mark".into()))
}

/// The mark of a call this gateway starts itself (a connection test).
pub fn own_mark(own: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(own) {
        h.insert(HOP_HEADER, v);
    }
    h
}

/// Another deployment's id as passed on: printable and short, so a
/// hostile mark cannot grow the header.
fn clip_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HOP_HEADER, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_fresh_request_gets_the_own_mark() {
        assert_eq!(next_hop(&HeaderMap::new(), "aaaa").unwrap(), "aaaa");
    }

    #[test]
    fn other_gateways_are_kept_in_order() {
        assert_eq!(next_hop(&with(&["b1, c2"]), "aaaa").unwrap(), "b1,c2,aaaa");
        assert_eq!(
            next_hop(&with(&["b1", "c2"]), "aaaa").unwrap(),
            "b1,c2,aaaa"
        );
    }

    #[test]
    fn the_own_mark_is_a_loop() {
        for h in [with(&["aaaa"]), with(&["b1,aaaa"]), with(&["b1", " aaaa "])] {
            let e = next_hop(&h, "aaaa").unwrap_err();
            assert!(matches!(e, GatewayError::LoopDetected(_)), "{e}");
            assert_eq!(e.status(), http::StatusCode::LOOP_DETECTED);
        }
    }

    #[test]
    fn too_many_hops_are_refused() {
        assert!(next_hop(&with(&["b,c"]), "a").is_ok());
        assert!(next_hop(&with(&["b,c,d"]), "a").is_err());
        assert!(next_hop(&with(&[",,,b,,c,,"]), "a").is_ok());
    }

    #[test]
    fn hostile_ids_are_cut_and_cleaned() {
        let long = "x".repeat(500);
        let v = next_hop(&with(&[&format!("{long};drop")]), "a").unwrap();
        assert_eq!(v.to_str().unwrap(), format!("{},a", "x".repeat(32)));
        let bytes = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        let mut h = HeaderMap::new();
        h.insert(HOP_HEADER, bytes);
        assert!(next_hop(&h, "a").is_ok());
    }
}

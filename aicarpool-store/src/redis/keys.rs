//! Key names of one scope (see the layout in the module docs).

use std::fmt;

use aicarpool_core::limit::{Bounds, Scope, Window};

/// The keys of one scope: `<prefix><scope>:<what>`.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct ScopeKeys(String);

impl fmt::Debug for ScopeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Escapes what would make two scopes share a key (`:` separates ids) or
/// move a key to another cluster slot (`{`, `}`).
fn push_escaped(out: &mut String, id: &str) {
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

impl ScopeKeys {
    pub(super) fn new(prefix: &str, scope: &Scope) -> Self {
        let mut base = String::with_capacity(prefix.len() + 40);
        base.push_str(prefix);
        base.push_str(scope.kind());
        match scope {
            Scope::Key(id) | Scope::Group(id) | Scope::Department(id) | Scope::Enterprise(id) => {
                base.push(':');
                push_escaped(&mut base, id);
            }
            Scope::Member { group_id, user_id } => {
                base.push(':');
                push_escaped(&mut base, group_id);
                base.push(':');
                push_escaped(&mut base, user_id);
            }
        }
        Self(base)
    }

    fn sub(&self, what: &str) -> String {
        format!("{}:{what}", self.0)
    }

    /// The settled spend of `w`'s current period. Periods are named by
    /// their start, so a new day is a new key and the old one expires.
    fn period(&self, w: Window, bounds: &Bounds) -> String {
        match w {
            Window::Total => self.sub("q:total"),
            _ => format!(
                "{}:q:{}:{}",
                self.0,
                w.as_str(),
                bounds.start(w).timestamp_millis()
            ),
        }
    }

    fn periods(&self, bounds: &Bounds) -> [String; 4] {
        Window::ALL.map(|w| self.period(w, bounds))
    }

    /// KEYS of the admission script, in its order.
    pub(super) fn admit(&self, bounds: &Bounds) -> [String; 10] {
        let [d, w, m, t] = self.periods(bounds);
        [
            self.sub("lease"),
            self.sub("resv"),
            self.sub("sum"),
            self.sub("rpm"),
            self.sub("tpm"),
            self.sub("load"),
            d,
            w,
            m,
            t,
        ]
    }

    /// KEYS of the seeding script.
    pub(super) fn seed(&self, bounds: &Bounds) -> [String; 5] {
        let [d, w, m, t] = self.periods(bounds);
        [self.sub("load"), d, w, m, t]
    }

    /// KEYS of the finishing script for a scope that counted the request.
    pub(super) fn finish_counted(&self, bounds: &Bounds) -> [String; 8] {
        let [d, w, m, t] = self.periods(bounds);
        [
            self.sub("lease"),
            self.sub("resv"),
            self.sub("sum"),
            self.sub("tpm"),
            d,
            w,
            m,
            t,
        ]
    }

    /// KEYS of the finishing script for a scope that had no counters.
    pub(super) fn finish_uncounted(&self, bounds: &Bounds) -> [String; 5] {
        let [d, w, m, t] = self.periods(bounds);
        [self.sub("tpm"), d, w, m, t]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_collide_or_pick_a_slot() {
        let a = ScopeKeys::new(
            "p:",
            &Scope::Member {
                group_id: "g:1".into(),
                user_id: "u".into(),
            },
        );
        let b = ScopeKeys::new(
            "p:",
            &Scope::Member {
                group_id: "g".into(),
                user_id: "1:u".into(),
            },
        );
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "p:member:g%3A1:u");
        let c = ScopeKeys::new("p:", &Scope::Key("{x}%".into()));
        assert_eq!(format!("{c:?}"), "p:key:%7Bx%7D%25");
    }
}

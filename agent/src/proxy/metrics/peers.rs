//! Interning of [`PeerLabels`]: a connection's source and destination are
//! looked up by borrowed strings (no allocation once seen), and each
//! distinct value is stored once. Cardinality is workloads × services.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock};

use super::labels::{PeerLabels, Peers, Reporter};
use crate::identity::Identity;
use crate::proxy::context::ConnectionContext;

/// The value Istio uses for a label it cannot fill.
pub const UNKNOWN: &str = "unknown";

/// A connection's peers, borrowed from its context.
#[derive(Clone, Copy, Debug)]
pub struct PeerView<'a> {
    pub reporter: Reporter,
    pub source_workload: &'a str,
    pub source_workload_namespace: &'a str,
    pub source_principal: &'a Identity,
    pub destination_service: &'a str,
    pub destination_service_namespace: &'a str,
}

impl<'a> PeerView<'a> {
    /// The peers of `conn` as `reporter` sees them.
    pub fn of(conn: &'a ConnectionContext, reporter: Reporter) -> Self {
        let or_unknown = |s: &'a str| if s.is_empty() { UNKNOWN } else { s };
        let service = conn.service().map(|s| &**s);
        PeerView {
            reporter,
            source_workload: or_unknown(&conn.workload.name),
            source_workload_namespace: or_unknown(&conn.workload.namespace),
            source_principal: &conn.src_identity,
            destination_service: service.map_or(UNKNOWN, |s| s.host.as_str()),
            destination_service_namespace: service.map_or(UNKNOWN, |s| s.namespace.as_str()),
        }
    }

    fn hash_with(&self, build: &RandomState) -> u64 {
        let mut h = build.build_hasher();
        self.reporter.hash(&mut h);
        self.source_workload.hash(&mut h);
        self.source_workload_namespace.hash(&mut h);
        self.source_principal.trust_domain.hash(&mut h);
        self.source_principal.namespace.hash(&mut h);
        self.source_principal.service_account.hash(&mut h);
        self.destination_service.hash(&mut h);
        self.destination_service_namespace.hash(&mut h);
        h.finish()
    }

    fn matches(&self, labels: &PeerLabels) -> bool {
        self.reporter == labels.reporter
            && *self.source_workload == *labels.source_workload
            && *self.source_workload_namespace == *labels.source_workload_namespace
            && self.destination_service == &*labels.destination_service
            && self.destination_service_namespace == &*labels.destination_service_namespace
            && principal_matches(self.source_principal, &labels.source_principal)
    }

    fn to_labels(self) -> PeerLabels {
        PeerLabels {
            reporter: self.reporter,
            source_workload: self.source_workload.into(),
            source_workload_namespace: self.source_workload_namespace.into(),
            source_principal: self.source_principal.to_string().into(),
            destination_service: self.destination_service.into(),
            destination_service_namespace: self.destination_service_namespace.into(),
        }
    }
}

/// Whether `text` is `id` rendered (`spiffe://td/ns/ns/sa/sa`), without
/// rendering it.
fn principal_matches(id: &Identity, text: &str) -> bool {
    let rest = text.strip_prefix("spiffe://");
    let rest = rest.and_then(|r| r.strip_prefix(id.trust_domain.as_str()));
    let rest = rest.and_then(|r| r.strip_prefix("/ns/"));
    let rest = rest.and_then(|r| r.strip_prefix(id.namespace.as_str()));
    let rest = rest.and_then(|r| r.strip_prefix("/sa/"));
    rest == Some(id.service_account.as_str())
}

/// Every [`PeerLabels`] value seen, by the hash of its borrowed view.
#[derive(Debug, Default)]
pub struct Interner {
    hasher: RandomState,
    // Collisions are kept side by side; they are compared field by field.
    table: RwLock<HashMap<u64, Vec<Peers>>>,
}

impl Interner {
    /// The interned labels for `view`; allocates only the first time.
    pub fn get(&self, view: PeerView<'_>) -> Peers {
        let hash = view.hash_with(&self.hasher);
        {
            let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = find(&table, hash, &view) {
                return found;
            }
        }
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&table, hash, &view) {
            return found;
        }
        let peers = Peers(Arc::new(view.to_labels()));
        table.entry(hash).or_default().push(peers.clone());
        peers
    }

    /// How many distinct values are stored.
    pub fn len(&self) -> usize {
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        table.values().map(Vec::len).sum()
    }

    /// Whether nothing was interned yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn find(table: &HashMap<u64, Vec<Peers>>, hash: u64, view: &PeerView<'_>) -> Option<Peers> {
    table
        .get(&hash)?
        .iter()
        .find(|p| view.matches(p.labels()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sa: &str) -> Identity {
        Identity {
            trust_domain: "cluster.local".into(),
            namespace: "bookinfo".into(),
            service_account: sa.into(),
        }
    }

    fn view<'a>(id: &'a Identity, service: &'a str) -> PeerView<'a> {
        PeerView {
            reporter: Reporter::Waypoint,
            source_workload: "productpage",
            source_workload_namespace: "bookinfo",
            source_principal: id,
            destination_service: service,
            destination_service_namespace: "istio-egress",
        }
    }

    #[test]
    fn same_view_same_allocation() {
        let interner = Interner::default();
        let id = identity("productpage");
        let a = interner.get(view(&id, "httpbin.org"));
        let b = interner.get(view(&id, "httpbin.org"));
        assert_eq!(a, b);
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(interner.len(), 1);
        assert_eq!(
            &*a.labels().source_principal,
            "spiffe://cluster.local/ns/bookinfo/sa/productpage"
        );
    }

    #[test]
    fn any_differing_field_is_another_value() {
        let interner = Interner::default();
        let id = identity("productpage");
        let other_id = identity("reviews");
        let base = interner.get(view(&id, "httpbin.org"));
        assert_ne!(base, interner.get(view(&id, "example.com")));
        assert_ne!(base, interner.get(view(&other_id, "httpbin.org")));
        let mut source = view(&id, "httpbin.org");
        source.reporter = Reporter::Source;
        assert_ne!(base, interner.get(source));
        assert_eq!(interner.len(), 4);
    }

    #[test]
    fn principal_is_compared_without_rendering() {
        let id = identity("productpage");
        assert!(principal_matches(
            &id,
            "spiffe://cluster.local/ns/bookinfo/sa/productpage"
        ));
        assert!(!principal_matches(
            &id,
            "spiffe://cluster.local/ns/bookinfo/sa/productpage2"
        ));
        assert!(!principal_matches(
            &id,
            "cluster.local/ns/bookinfo/sa/productpage"
        ));
    }
}

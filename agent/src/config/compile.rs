//! Valid objects + allocated addresses -> one [`Snapshot`]. Pure: no I/O.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::allocate::{Addresses, AllocKey};
use super::kinds::gateway::Gateway;
use super::kinds::namespace::DATAPLANE_MODE;
use super::kinds::service_entry::{is_wildcard, ServiceEntry};
use super::kinds::Spec;
use super::object::Object;
use super::snapshot::{
    canonical, NamespaceInfo, Resolution, Service, Snapshot, Waypoint, WaypointBinding, WaypointRef,
};

/// Label naming the waypoint a namespace or ServiceEntry uses.
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// Label naming the namespace of that waypoint (default: the object's own).
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// ServiceEntry label that turns address auto-allocation off (`"false"`).
pub const ENABLE_AUTOALLOCATE: &str = "networking.istio.io/enable-autoallocate-ip";

/// Whether `host` of this ServiceEntry gets auto-allocated addresses
/// (Istio's rules: not with `spec.addresses`, not for NONE, wildcards only
/// with DYNAMIC_DNS, not when the label says `"false"`).
fn auto_allocates(object: &Object, se: &ServiceEntry, host: &str) -> bool {
    let resolution = se.resolution();
    se.addresses.is_empty()
        && resolution != Resolution::None
        && (!is_wildcard(host) || resolution == Resolution::DynamicDns)
        && object
            .meta
            .labels
            .get(ENABLE_AUTOALLOCATE)
            .map(String::as_str)
            != Some("false")
}

fn service_entries<'a>(
    objects: &'a [&'a Object],
) -> impl Iterator<Item = (&'a Object, &'a ServiceEntry)> + 'a {
    objects.iter().filter_map(|o| match &o.spec {
        Spec::ServiceEntry(se) => Some((*o, se)),
        _ => None,
    })
}

/// The (namespace, name, host) triples that need auto-allocated addresses.
pub fn wanted_addresses<'a>(objects: impl IntoIterator<Item = &'a Object>) -> HashSet<AllocKey> {
    let objects: Vec<&Object> = objects.into_iter().collect();
    let mut wanted = HashSet::new();
    for (o, se) in service_entries(&objects) {
        for host in &se.hosts {
            if auto_allocates(o, se, host) {
                wanted.insert(AllocKey {
                    namespace: o.namespace().to_string(),
                    name: o.name().to_string(),
                    host: host.to_ascii_lowercase(),
                });
            }
        }
    }
    wanted
}

/// The waypoint a label set asks for: `None` when unlabelled or `none`.
fn waypoint_label(
    labels: &std::collections::BTreeMap<String, String>,
    own_namespace: &str,
) -> Option<Option<WaypointRef>> {
    let name = labels.get(USE_WAYPOINT)?;
    if name.is_empty() || name == "none" {
        return Some(None);
    }
    let namespace = labels
        .get(USE_WAYPOINT_NAMESPACE)
        .filter(|n| !n.is_empty())
        .map_or(own_namespace, String::as_str);
    Some(Some(WaypointRef {
        namespace: namespace.to_string(),
        name: name.clone(),
    }))
}

/// Compiles valid objects; `generation` is left at 0 for the caller to set.
pub fn compile<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    addresses: &HashMap<AllocKey, Addresses>,
) -> Snapshot {
    let mut objects: Vec<&Object> = objects.into_iter().collect();
    // Key order makes the result (and VIP conflicts) independent of input order.
    objects.sort_by_key(|o| o.key());
    let mut snapshot = Snapshot::default();
    for o in &objects {
        match &o.spec {
            Spec::Namespace(_) => {
                let info = NamespaceInfo {
                    ambient: o.meta.labels.get(DATAPLANE_MODE).map(String::as_str)
                        == Some("ambient"),
                    use_waypoint: waypoint_label(&o.meta.labels, o.name()).flatten(),
                };
                snapshot.namespaces.insert(o.name().to_string(), info);
            }
            Spec::Gateway(gw) => add_waypoint(&mut snapshot, o, gw),
            Spec::ServiceEntry(_) => {}
        }
    }
    for (o, se) in service_entries(&objects) {
        let binding = binding(&snapshot, o);
        let nets = se.address_nets();
        let static_vips: Vec<IpAddr> = nets
            .iter()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| canonical(n.addr()))
            .collect();
        for host in &se.hosts {
            let host = host.to_ascii_lowercase();
            let vips = if !se.addresses.is_empty() {
                static_vips.clone()
            } else {
                let key = AllocKey {
                    namespace: o.namespace().to_string(),
                    name: o.name().to_string(),
                    host: host.clone(),
                };
                match (auto_allocates(o, se, &host), addresses.get(&key)) {
                    (true, Some(a)) => vec![IpAddr::V4(a.ipv4), IpAddr::V6(a.ipv6)],
                    _ => Vec::new(),
                }
            };
            let service = Arc::new(Service {
                namespace: o.namespace().to_string(),
                name: o.name().to_string(),
                host: host.clone(),
                vips,
                ports: se.service_ports(),
                resolution: se.resolution(),
                endpoints: se.service_endpoints(),
                waypoint: binding.clone(),
            });
            index(&mut snapshot, &service);
            for net in nets.iter().filter(|n| n.prefix_len() != n.max_prefix_len()) {
                snapshot.address_ranges.push((*net, service.clone()));
            }
            snapshot.services.push(service);
        }
    }
    snapshot
}

fn add_waypoint(snapshot: &mut Snapshot, o: &Object, gw: &Gateway) {
    if !gw.is_waypoint() {
        return;
    }
    let reference = WaypointRef {
        namespace: o.namespace().to_string(),
        name: o.name().to_string(),
    };
    snapshot.waypoints.insert(
        reference.clone(),
        Waypoint {
            reference,
            service_account: o.name().to_string(),
        },
    );
}

/// The ServiceEntry's label wins over its namespace's; the waypoint must exist.
fn binding(snapshot: &Snapshot, o: &Object) -> WaypointBinding {
    let target = match waypoint_label(&o.meta.labels, o.namespace()) {
        Some(t) => t,
        None => snapshot
            .namespaces
            .get(o.namespace())
            .and_then(|n| n.use_waypoint.clone()),
    };
    match target {
        None => WaypointBinding::None,
        Some(r) if snapshot.waypoints.contains_key(&r) => WaypointBinding::Bound(r),
        Some(r) => WaypointBinding::Missing(r),
    }
}

fn index(snapshot: &mut Snapshot, service: &Arc<Service>) {
    for vip in &service.vips {
        match snapshot.by_vip.get(vip) {
            Some(owner) => tracing::warn!(
                %vip,
                owner = %format!("{}/{} {}", owner.namespace, owner.name, owner.host),
                ignored = %format!("{}/{} {}", service.namespace, service.name, service.host),
                "address already used by another ServiceEntry host"
            ),
            None => {
                snapshot.by_vip.insert(*vip, service.clone());
            }
        }
    }
    snapshot
        .by_host
        .entry(service.host.clone())
        .or_default()
        .push(service.clone());
}

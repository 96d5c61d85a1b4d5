//! Valid objects + allocated addresses -> one [`Snapshot`]. Pure: no I/O.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::allocate::{Addresses, AllocKey};
use super::kinds::gateway::Gateway;
use super::kinds::namespace::DATAPLANE_MODE;
use super::kinds::service_entry::{is_wildcard, ServiceEntry};
use super::kinds::sidecar::Sidecar;
use super::kinds::Spec;
use super::mesh::OutboundMode;
use super::object::Object;
use super::snapshot::{
    NamespaceInfo, Resolution, Service, Snapshot, Waypoint, WaypointBinding, WaypointRef,
    ROOT_NAMESPACE,
};
use super::unaccepted::Unaccepted;
use crate::net::HostName;

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
    objects.into_iter().flat_map(wanted_by).collect()
}

/// The triples one object needs (none unless it is a ServiceEntry).
pub fn wanted_by(o: &Object) -> Vec<AllocKey> {
    let Spec::ServiceEntry(se) = &o.spec else {
        return Vec::new();
    };
    se.hosts
        .iter()
        .filter(|host| auto_allocates(o, se, host))
        .map(|host| AllocKey {
            namespace: o.namespace().to_string(),
            name: o.name().to_string(),
            host: HostName::new(host),
        })
        .collect()
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
    compile_with(objects, std::iter::empty(), addresses)
}

/// Compiles valid objects, and fail-closed stand-ins for the refused ones
/// with no last good version whose kind has one ([`super::unaccepted`]).
pub fn compile_with<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    unaccepted: impl IntoIterator<Item = &'a Unaccepted>,
    addresses: &HashMap<AllocKey, Addresses>,
) -> Snapshot {
    let mut objects: Vec<&Object> = objects.into_iter().collect();
    // Key order makes the result (and VIP conflicts) independent of input order.
    // Compared by reference: no key (three strings) built per comparison.
    objects.sort_by(|a, b| {
        (a.info.kind, a.namespace(), a.name()).cmp(&(b.info.kind, b.namespace(), b.name()))
    });
    let mut snapshot = Snapshot::default();
    let mut policies = Vec::new();
    let mut virtual_services = Vec::new();
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
            Spec::DestinationRule(dr) => snapshot
                .destination_rules
                .push(Arc::new(dr.compile(o.namespace(), o.name()))),
            Spec::Secret(secret) => {
                snapshot.secrets.insert(
                    (o.namespace().to_string(), o.name().to_string()),
                    Arc::new(secret.tls()),
                );
            }
            // Both were compiled once at parse time; a failure here would
            // mean the compiler changed under a stored object, so it is
            // logged and the object left out (never "allow everything").
            Spec::AuthorizationPolicy(ap) => {
                match crate::authz::compile(o.namespace(), o.name(), &o.meta.annotations, &ap.0) {
                    Ok(policy) => policies.push(Arc::new(policy)),
                    Err(e) => tracing::error!(error = %e, "AuthorizationPolicy left out"),
                }
            }
            Spec::VirtualService(vs) => match crate::route::compile(o.namespace(), o.name(), &vs.0)
            {
                Ok(compiled) => virtual_services.push(Arc::new(compiled)),
                Err(e) => tracing::error!(error = %e, "VirtualService left out"),
            },
            Spec::ConfigMap(cm) => {
                if let Some(mesh) = &cm.mesh {
                    snapshot.mesh = mesh.clone();
                }
            }
            Spec::Sidecar(sidecar) => add_sidecar(&mut snapshot, o, sidecar),
        }
    }
    for u in unaccepted {
        match u.key.kind {
            "AuthorizationPolicy" => {
                let stand_in = crate::authz::fail_closed(&u.key.namespace, &u.key.name, &u.spec);
                policies.push(Arc::new(stand_in));
            }
            // MeshConfig egret cannot read: its outbound mode is unknown,
            // so REGISTRY_ONLY (path normalization keeps Istio's default).
            "ConfigMap" if is_mesh_config_key(&u.key) => {
                snapshot.mesh.outbound = OutboundMode::RegistryOnly;
            }
            // A namespace's Sidecar egret cannot honour: REGISTRY_ONLY for
            // the namespace (a Sidecar only ever narrows what is reachable).
            "Sidecar" => {
                snapshot
                    .sidecars
                    .insert(u.key.namespace.clone(), Some(OutboundMode::RegistryOnly));
            }
            _ => {}
        }
    }
    snapshot.authz = Arc::new(crate::authz::PolicySet::new(policies, ROOT_NAMESPACE));
    for warning in snapshot.authz.warnings() {
        tracing::warn!("{warning}");
    }
    snapshot.routes = Arc::new(crate::route::RouteTable::new(virtual_services));
    for warning in snapshot.routes.warnings() {
        tracing::warn!("{warning}");
    }
    for (o, se) in service_entries(&objects) {
        let binding = binding(&snapshot, o);
        let nets = se.address_nets();
        let static_vips: Vec<IpAddr> = nets
            .iter()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr().to_canonical())
            .collect();
        for host in &se.hosts {
            let host = HostName::new(host);
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
            address: gw.ip_address().map(|ip| ip.to_canonical()),
        },
    );
}

/// Whether `key` is istiod's MeshConfig ConfigMap.
fn is_mesh_config_key(key: &super::object::ObjectKey) -> bool {
    use super::kinds::config_map::{MESH_CONFIG_NAME, MESH_CONFIG_NAMESPACE};
    key.namespace == MESH_CONFIG_NAMESPACE && key.name == MESH_CONFIG_NAME
}

/// A namespace-wide Sidecar's outbound mode. Istio leaves several such
/// Sidecars in one namespace undefined; egret takes the strictest and says so.
fn add_sidecar(snapshot: &mut Snapshot, o: &Object, sidecar: &Sidecar) {
    let namespace = o.namespace().to_string();
    let mode = sidecar.outbound_mode();
    match snapshot.sidecars.get(&namespace) {
        None => {
            snapshot.sidecars.insert(namespace, mode);
        }
        Some(earlier) => {
            let strictest = match (*earlier, mode) {
                (Some(OutboundMode::RegistryOnly), _) | (_, Some(OutboundMode::RegistryOnly)) => {
                    Some(OutboundMode::RegistryOnly)
                }
                (Some(m), _) | (None, Some(m)) => Some(m),
                (None, None) => None,
            };
            tracing::warn!(
                namespace = %namespace,
                sidecar = %o.name(),
                "several namespace-wide Sidecars in one namespace (undefined in Istio): the strictest outboundTrafficPolicy applies"
            );
            snapshot.sidecars.insert(namespace, strictest);
        }
    }
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

/// Makes `service` found by its VIPs (the first service to claim an
/// address keeps it) and by its host.
pub(crate) fn index(snapshot: &mut Snapshot, service: &Arc<Service>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::allocate::Allocator;
    use crate::testing::manifests::{
        objects, service_entry, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY,
    };

    fn build(texts: &[&str]) -> Snapshot {
        let all: Vec<Object> = texts.iter().flat_map(|t| objects(t)).collect();
        let mut alloc = Allocator::in_memory();
        alloc.reconcile(&wanted_addresses(&all)).unwrap();
        compile(&all, alloc.assigned())
    }

    fn waypoint(ns: &str, name: &str) -> WaypointRef {
        WaypointRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn walkthrough_step3() {
        let s = build(&[EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY]);
        assert!(s.is_ambient("istio-egress"));
        assert!(s
            .waypoints
            .contains_key(&waypoint("istio-egress", "egress-waypoint")));
        assert_eq!(
            s.waypoints[&waypoint("istio-egress", "egress-waypoint")].service_account,
            "egress-waypoint"
        );
        let svc = s
            .service_for_vip("240.240.0.2".parse().unwrap())
            .expect("v4 VIP");
        assert_eq!(svc.host, "httpbin.org");
        assert_eq!(
            svc.waypoint,
            WaypointBinding::Bound(waypoint("istio-egress", "egress-waypoint"))
        );
        assert!(s.service_for_vip("2001:2::2".parse().unwrap()).is_some());
        let (v4, v6) = s.dns_lookup("HTTPBIN.org.").unwrap();
        assert_eq!(v4, ["240.240.0.2".parse::<std::net::Ipv4Addr>().unwrap()]);
        assert_eq!(v6, ["2001:2::2".parse::<std::net::Ipv6Addr>().unwrap()]);
    }

    #[test]
    fn waypoint_binding_rules() {
        let unlabelled_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-egress}\n";
        let se_label = "    istio.io/use-waypoint: egress-waypoint\n";
        let se_none = "    istio.io/use-waypoint: none\n";
        let se_other_ns = "    istio.io/use-waypoint: egress-waypoint\n    istio.io/use-waypoint-namespace: elsewhere\n";
        let spec = "  hosts: [a.com]\n  resolution: DNS\n";
        let bound = WaypointBinding::Bound(waypoint("istio-egress", "egress-waypoint"));
        let missing = WaypointBinding::Missing(waypoint("istio-egress", "egress-waypoint"));
        let other_class = GATEWAY.replace("istio-waypoint", "istio");
        let cases: Vec<(&str, Vec<String>, WaypointBinding)> = vec![
            (
                "SE label + gateway",
                vec![
                    unlabelled_ns.into(),
                    GATEWAY.into(),
                    service_entry("istio-egress", "a", se_label, spec),
                ],
                bound.clone(),
            ),
            (
                "namespace label (4c re-apply)",
                vec![
                    EGRESS_NAMESPACE.into(),
                    GATEWAY.into(),
                    service_entry("istio-egress", "a", "", spec),
                ],
                bound.clone(),
            ),
            (
                "no labels",
                vec![
                    unlabelled_ns.into(),
                    GATEWAY.into(),
                    service_entry("istio-egress", "a", "", spec),
                ],
                WaypointBinding::None,
            ),
            (
                "SE none overrides namespace",
                vec![
                    EGRESS_NAMESPACE.into(),
                    GATEWAY.into(),
                    service_entry("istio-egress", "a", se_none, spec),
                ],
                WaypointBinding::None,
            ),
            (
                "gateway missing",
                vec![
                    EGRESS_NAMESPACE.into(),
                    service_entry("istio-egress", "a", "", spec),
                ],
                missing.clone(),
            ),
            (
                "gateway of another class",
                vec![
                    EGRESS_NAMESPACE.into(),
                    other_class,
                    service_entry("istio-egress", "a", "", spec),
                ],
                missing,
            ),
            (
                "waypoint namespace label",
                vec![
                    GATEWAY.into(),
                    service_entry("istio-egress", "a", se_other_ns, spec),
                ],
                WaypointBinding::Missing(waypoint("elsewhere", "egress-waypoint")),
            ),
        ];
        for (name, texts, want) in cases {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let s = build(&texts);
            assert_eq!(s.services[0].waypoint, want, "{name}");
        }
    }

    #[test]
    fn vip_rules() {
        let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
        let cases: Vec<(&str, String, Vec<IpAddr>)> = vec![
            (
                "DNS auto-allocates",
                service_entry("n", "a", "", "  hosts: [a.com]\n  resolution: DNS\n"),
                vec![v4("240.240.0.2"), v4("2001:2::2")],
            ),
            (
                "NONE does not",
                service_entry("n", "a", "", "  hosts: [a.com]\n  resolution: NONE\n"),
                vec![],
            ),
            (
                "unset resolution is NONE",
                service_entry("n", "a", "", "  hosts: [a.com]\n"),
                vec![],
            ),
            (
                "label false",
                service_entry(
                    "n",
                    "a",
                    "    networking.istio.io/enable-autoallocate-ip: \"false\"\n",
                    "  hosts: [a.com]\n  resolution: DNS\n",
                ),
                vec![],
            ),
            (
                "wildcard NONE",
                service_entry("n", "a", "", "  hosts: ['*.a.com']\n  resolution: NONE\n"),
                vec![],
            ),
            (
                "wildcard DYNAMIC_DNS",
                service_entry(
                    "n",
                    "a",
                    "",
                    "  hosts: ['*.a.com']\n  resolution: DYNAMIC_DNS\n",
                ),
                vec![v4("240.240.0.2"), v4("2001:2::2")],
            ),
            (
                "spec.addresses: IPs only",
                service_entry(
                    "n",
                    "a",
                    "",
                    "  hosts: [a.com]\n  addresses: [10.1.2.3, 10.9.0.0/16]\n  resolution: DNS\n",
                ),
                vec![v4("10.1.2.3")],
            ),
        ];
        for (name, text, want) in cases {
            let s = build(&[&text]);
            assert_eq!(s.services[0].vips, want, "{name}");
            for ip in &want {
                assert!(s.by_vip.contains_key(ip), "{name}: {ip} indexed");
            }
        }
        let s = build(&[&service_entry(
            "n",
            "a",
            "",
            "  hosts: [a.com]\n  addresses: [10.9.0.0/16]\n  resolution: DNS\n",
        )]);
        assert_eq!(s.address_ranges.len(), 1);
        // An address in the range belongs to the service, at the waypoint
        // and in the kernel's prefix map.
        let host = |ip: &str| {
            s.service_for_vip(ip.parse().unwrap())
                .map(|svc| svc.host.clone())
        };
        assert_eq!(host("10.9.200.7").as_deref(), Some("a.com"));
        assert_eq!(host("::ffff:10.9.0.1").as_deref(), Some("a.com"));
        assert_eq!(host("10.10.0.1"), None);
        // (kernel::keys turns it into the trie's prefix.)
        let nets: Vec<ipnet::IpNet> = s.address_nets().collect();
        assert_eq!(nets, vec!["10.9.0.0/16".parse::<ipnet::IpNet>().unwrap()]);
    }

    #[test]
    fn one_service_per_host_and_shared_hosts() {
        let two = service_entry("n", "a", "", "  hosts: [a.com, B.com]\n  resolution: DNS\n");
        let other = service_entry("m", "b", "", "  hosts: [b.com]\n  resolution: DNS\n");
        let s = build(&[&two, &other]);
        assert_eq!(s.services.len(), 3);
        assert_eq!(s.by_host[&HostName::new("b.com")].len(), 2);
        assert_eq!(s.by_vip.len(), 6);
    }
}

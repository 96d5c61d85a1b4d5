//! The compiled configuration: one immutable value built from every valid
//! manifest, swapped atomically. Kernel map sync, the waypoint and the DNS
//! proxy read only this, never the raw manifests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::net::HostName;

/// `namespace/name` of a waypoint Gateway.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaypointRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for WaypointRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the config says about one Kubernetes namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Label `istio.io/dataplane-mode=ambient`: its workloads are enrolled.
    pub ambient: bool,
    /// Label `istio.io/use-waypoint` (+ `istio.io/use-waypoint-namespace`).
    pub use_waypoint: Option<WaypointRef>,
}

/// A Gateway with `gatewayClassName: istio-waypoint`, served by this agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waypoint {
    pub reference: WaypointRef,
    /// SPIFFE identity the waypoint presents: its namespace and the service
    /// account named after the Gateway (as Istio deploys it).
    pub service_account: String,
    /// Gateway `spec.addresses` IP: the waypoint runs elsewhere (another
    /// node, or `egret waypoint`) and is reached over HBONE at this address,
    /// port 15008. `None`: this agent serves it.
    pub address: Option<IpAddr>,
}

/// Application protocol of a service port (ServiceEntry `ports[].protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    Mongo,
}

impl Protocol {
    /// Ports the waypoint parses as HTTP (plain text).
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// One port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    pub protocol: Protocol,
    /// Port on the endpoints; `number` when unset.
    pub target_port: Option<u16>,
}

/// ServiceEntry `resolution`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Forward to the original destination the workload connected to.
    None,
    /// Forward to `endpoints` addresses.
    Static,
    /// Resolve the host (or endpoint names) with the configured resolver.
    Dns,
    DnsRoundRobin,
    DynamicDns,
}

/// One ServiceEntry endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address, or a DNS name when resolution is DNS.
    pub address: String,
    /// Port name -> port number overrides.
    pub ports: HashMap<String, u16>,
}

/// How a service reaches its waypoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaypointBinding {
    /// Not bound: traffic is proxied at L4 straight to the endpoints.
    None,
    /// Bound to a waypoint this agent serves.
    Bound(WaypointRef),
    /// Bound by label to a waypoint that does not exist (traffic is refused).
    Missing(WaypointRef),
}

/// One host of one ServiceEntry: the unit the kernel, DNS and proxy see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// ServiceEntry namespace.
    pub namespace: String,
    /// ServiceEntry name.
    pub name: String,
    /// The host (`hosts[]` entry).
    pub host: HostName,
    /// Addresses workloads connect to: `spec.addresses` or the allocated VIPs.
    pub vips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub endpoints: Vec<Endpoint>,
    pub waypoint: WaypointBinding,
}

impl Service {
    /// The declared port a workload connected to.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// The whole compiled config.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases with every successful compile.
    pub generation: u64,
    pub namespaces: HashMap<String, NamespaceInfo>,
    pub waypoints: HashMap<WaypointRef, Waypoint>,
    pub services: Vec<Arc<Service>>,
    /// VIP -> service (a VIP belongs to exactly one host).
    pub by_vip: HashMap<IpAddr, Arc<Service>>,
    /// Host -> services (several ServiceEntries may name a host).
    pub by_host: HashMap<HostName, Vec<Arc<Service>>>,
    /// CIDR entries of `spec.addresses` (kept for range matching; only single
    /// IPs become VIPs).
    pub address_ranges: Vec<(ipnet::IpNet, Arc<Service>)>,
    /// AuthorizationPolicies, compiled and indexed by what they target.
    pub authz: Arc<crate::authz::PolicySet>,
    /// VirtualServices, compiled and indexed by host.
    pub routes: Arc<crate::route::RouteTable>,
    /// DestinationRules, in key order (namespace, name).
    pub destination_rules: Vec<Arc<DestinationPolicy>>,
    /// TLS Secrets by (namespace, name), for DestinationRule `credentialName`.
    pub secrets: HashMap<(String, String), Arc<TlsSecret>>,
    /// MeshConfig settings (the `istio` ConfigMap in `istio-system`).
    pub mesh: crate::config::mesh::MeshConfig,
    /// Namespace -> the outbound mode its namespace-wide Sidecar sets
    /// (`None`: a Sidecar that sets none, so the mesh-wide mode applies).
    pub sidecars: HashMap<String, Option<crate::config::mesh::OutboundMode>>,
}

impl Snapshot {
    /// Whether workloads of `namespace` are enrolled in the mesh.
    pub fn is_ambient(&self, namespace: &str) -> bool {
        self.namespaces.get(namespace).is_some_and(|n| n.ambient)
    }

    /// The outbound traffic policy of `namespace`'s workloads, as Istio
    /// resolves it: the namespace's own Sidecar; else the root namespace's
    /// Sidecar; else MeshConfig. A Sidecar without a policy defers to MeshConfig.
    pub fn outbound_mode(&self, namespace: &str) -> crate::config::mesh::OutboundMode {
        self.sidecars
            .get(namespace)
            .or_else(|| self.sidecars.get(ROOT_NAMESPACE))
            .copied()
            .flatten()
            .unwrap_or(self.mesh.outbound)
    }

    /// The service owning a VIP, else the one whose `spec.addresses` CIDR
    /// holds the address (the longest prefix, as the kernel matches it).
    pub fn service_for_vip(&self, ip: IpAddr) -> Option<&Arc<Service>> {
        let ip = ip.to_canonical();
        self.by_vip.get(&ip).or_else(|| {
            self.address_ranges
                .iter()
                .filter(|(net, _)| net.contains(&ip))
                .max_by_key(|(net, _)| net.prefix_len())
                .map(|(_, service)| service)
        })
    }

    /// Addresses the DNS proxy answers for `name` (any case, optional
    /// trailing dot). `None` when the name is not a mesh service.
    pub fn dns_lookup(&self, name: &str) -> Option<(Vec<Ipv4Addr>, Vec<Ipv6Addr>)> {
        let name = HostName::fully_qualified(name);
        let services = self
            .by_host
            .get(&name)
            .or_else(|| self.wildcard_services(&name))?;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for ip in services.iter().flat_map(|s| s.vips.iter()) {
            match ip {
                IpAddr::V4(a) if !v4.contains(a) => v4.push(*a),
                IpAddr::V6(a) if !v6.contains(a) => v6.push(*a),
                _ => {}
            }
        }
        if v4.is_empty() && v6.is_empty() {
            return None;
        }
        Some((v4, v6))
    }

    /// The services of the most specific wildcard host covering `name`
    /// (`*.example.test` covers `a.example.test` and `a.b.example.test`):
    /// a DYNAMIC_DNS wildcard has one VIP, which every name under it gets.
    pub fn wildcard_services(&self, name: &HostName) -> Option<&Vec<Arc<Service>>> {
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(services) = self.by_host.get(&HostName::new(&format!("*.{parent}"))) {
                return Some(services);
            }
            rest = parent;
        }
        None
    }

    /// Every VIP of every service: the addresses whose connects are captured.
    pub fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_vip.keys().copied()
    }

    /// Every `spec.addresses` CIDR: connects into them are captured too.
    pub fn address_nets(&self) -> impl Iterator<Item = ipnet::IpNet> + '_ {
        self.address_ranges.iter().map(|(net, _)| *net)
    }
}

impl Snapshot {
    /// The DestinationRule that applies to `service`: those in the service's
    /// namespace first, then the root namespace's; within one namespace an
    /// exact host beats the longest wildcard (Istio's most specific match).
    pub fn destination_rule(&self, service: &Service) -> Option<&Arc<DestinationPolicy>> {
        [service.namespace.as_str(), ROOT_NAMESPACE]
            .iter()
            .find_map(|ns| {
                self.destination_rules
                    .iter()
                    .filter(|dr| dr.namespace == *ns)
                    .filter_map(|dr| dr.host_specificity(&service.host).map(|s| (s, dr)))
                    // max_by_key keeps the last of equals: reversed, ties
                    // go to the first in key order.
                    .rev()
                    .max_by_key(|(s, _)| *s)
                    .map(|(_, dr)| dr)
            })
    }

    /// The TLS settings for traffic to `service` port `port` (the port the
    /// workload connected to), with the rule they come from.
    pub fn upstream_tls(
        &self,
        service: &Service,
        port: u16,
    ) -> Option<(Arc<DestinationPolicy>, UpstreamTls)> {
        let dr = self.destination_rule(service)?;
        let tls = dr.tls_for_port(port)?.clone();
        Some((dr.clone(), tls))
    }

    /// The Secret `namespace/name`, when one is applied.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Arc<TlsSecret>> {
        self.secrets.get(&(namespace.to_string(), name.to_string()))
    }
}

/// Istio's root namespace: its DestinationRules apply mesh-wide.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// DestinationRule `trafficPolicy.tls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plain text to the upstream.
    Disable,
    /// TLS, the upstream's certificate verified.
    Simple,
    /// TLS with a client certificate (files or a Secret).
    Mutual,
    /// Mesh mTLS with the workload identity's certificate.
    IstioMutual,
}

/// How the waypoint speaks TLS to an upstream (DestinationRule ClientTLSSettings).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// The mode.
    pub mode: TlsMode,
    /// `clientCertificate`: PEM file of the client chain (MUTUAL).
    pub client_certificate: Option<std::path::PathBuf>,
    /// `privateKey`: PEM file of the client key (MUTUAL).
    pub private_key: Option<std::path::PathBuf>,
    /// `caCertificates`: PEM file of trusted roots; the system roots when unset.
    pub ca_certificates: Option<std::path::PathBuf>,
    /// `credentialName`: a Secret in the rule's namespace with the key
    /// material (wins over the file fields).
    pub credential_name: Option<String>,
    /// `sni`: server name to send; the request's host when unset.
    pub sni: Option<HostName>,
    /// `subjectAltNames`: names one of which the server's certificate must
    /// carry; the SNI when empty.
    pub subject_alt_names: Vec<String>,
    /// `insecureSkipVerify`: no CA or name check at all.
    pub insecure_skip_verify: bool,
}

/// One DestinationRule, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// Rule namespace.
    pub namespace: String,
    /// Rule name.
    pub name: String,
    /// `spec.host` (`*.example.com` and `*` allowed).
    pub host: HostName,
    /// `trafficPolicy.tls`.
    pub tls: Option<UpstreamTls>,
    /// `trafficPolicy.portLevelSettings[]`: port number -> its `tls`
    /// (`None`: the port's settings have no tls, which replaces the
    /// top-level tls with none).
    pub port_tls: Vec<(u16, Option<UpstreamTls>)>,
}

impl DestinationPolicy {
    /// How well the rule's host matches `host`: `None` when it does not,
    /// else a larger number for a more specific match.
    pub fn host_specificity(&self, host: &HostName) -> Option<usize> {
        if self.host == *host {
            return Some(usize::MAX);
        }
        // `*.a.com` covers `x.a.com` and the service wildcard `*.x.a.com`;
        // a longer wildcard is more specific, `*` the least.
        (self.host.is_wildcard() && self.host.covers(host)).then(|| self.host.len() - 1)
    }

    /// The TLS settings for `port`: a port-level entry replaces the
    /// top-level settings whole.
    pub fn tls_for_port(&self, port: u16) -> Option<&UpstreamTls> {
        match self.port_tls.iter().find(|(p, _)| *p == port) {
            Some((_, tls)) => tls.as_ref(),
            None => self.tls.as_ref(),
        }
    }

    /// `namespace/name`, for errors and logs.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The PEM key material of one Secret (`cert`/`key`/`cacert` or
/// `tls.crt`/`tls.key`/`ca.crt`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsSecret {
    /// Client certificate chain, PEM.
    pub cert: Option<Vec<u8>>,
    /// Client private key, PEM.
    pub key: Option<Vec<u8>>,
    /// Trusted roots, PEM.
    pub ca: Option<Vec<u8>>,
}

#[cfg(test)]
mod tls_and_wildcard_tests {
    use super::*;
    use crate::config::allocate::Allocator;
    use crate::config::compile::{compile, wanted_addresses};
    use crate::config::object::Object;
    use crate::testing::manifests::{objects, service_entry};

    fn build(texts: &[&str]) -> Snapshot {
        let all: Vec<Object> = texts.iter().flat_map(|t| objects(t)).collect();
        let mut alloc = Allocator::in_memory();
        alloc.reconcile(&wanted_addresses(&all)).unwrap();
        compile(&all, alloc.assigned())
    }

    fn rule(ns: &str, name: &str, host: &str, sni: &str) -> String {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: '{host}'\n  trafficPolicy: {{tls: {{mode: SIMPLE, sni: {sni}}}}}\n")
    }

    #[test]
    fn wildcard_hosts_answer_every_name_under_them() {
        let s = build(&[&service_entry(
            "n",
            "w",
            "",
            "  hosts: ['*.example.test']\n  resolution: DYNAMIC_DNS\n",
        )]);
        let vip = "240.240.0.2".parse::<Ipv4Addr>().unwrap();
        for name in ["a.example.test.", "B.Example.Test", "x.y.example.test"] {
            assert_eq!(
                s.dns_lookup(name).map(|(v4, _)| v4),
                Some(vec![vip]),
                "{name}"
            );
        }
        for name in ["example.test", "aexample.test", "a.example.org"] {
            assert_eq!(s.dns_lookup(name), None, "{name}");
        }
    }

    #[test]
    fn destination_rules_by_namespace_then_specificity() {
        let se = service_entry(
            "n",
            "se",
            "",
            "  hosts: [api.example.test]\n  resolution: DNS\n",
        );
        let s = build(&[
            &se,
            &rule("n", "wide", "*.test", "wide.test"),
            &rule("n", "narrow", "*.example.test", "narrow.test"),
            &rule("istio-system", "exact", "api.example.test", "root.test"),
            &rule("elsewhere", "exact", "api.example.test", "other.test"),
        ]);
        let svc = &s.services[0];
        let (dr, tls) = s.upstream_tls(svc, 80).unwrap();
        assert_eq!(dr.reference(), "n/narrow");
        assert_eq!(tls.sni.as_deref(), Some("narrow.test"));

        // Only the root namespace's rule left: it applies mesh-wide.
        let s = build(&[
            &se,
            &rule("istio-system", "exact", "api.example.test", "root.test"),
        ]);
        assert_eq!(
            s.upstream_tls(&s.services[0], 80).unwrap().0.reference(),
            "istio-system/exact"
        );
    }
}

//! Istio `ServiceEntry`: external hosts, their ports and how to reach them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::config::object::{FieldError, ObjectMeta};
use crate::net::HostName;
use crate::config::snapshot::{Endpoint, Protocol, Resolution, ServicePort};

/// ServiceEntry `spec`, as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    /// `spec.hosts`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `spec.addresses`: IPs or CIDRs.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// `spec.ports`.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// `spec.location` (`MESH_EXTERNAL` when unset).
    #[serde(default)]
    pub location: Option<String>,
    /// `spec.resolution` (`NONE` when unset).
    #[serde(default)]
    pub resolution: Option<String>,
    /// `spec.endpoints`.
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
    /// `spec.exportTo`, accepted (single host: everything is visible).
    #[serde(default)]
    pub export_to: Vec<String>,
    /// `spec.subjectAltNames`.
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    /// `spec.workloadSelector`: not supported, ignored with a warning.
    #[serde(default)]
    pub workload_selector: Option<Value>,
}

/// One `spec.ports[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// Port number workloads connect to.
    pub number: u32,
    /// Port name (unique in the entry).
    #[serde(default)]
    pub name: String,
    /// Protocol; inferred from the name prefix when unset (Istio's convention).
    #[serde(default)]
    pub protocol: Option<String>,
    /// Port on the endpoints.
    #[serde(default)]
    pub target_port: Option<u32>,
}

/// One `spec.endpoints[]` entry (a WorkloadEntry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// IP address, or DNS name with resolution DNS.
    #[serde(default)]
    pub address: String,
    /// Port name -> port number on this endpoint.
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    /// Endpoint labels, accepted.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Network, accepted.
    #[serde(default)]
    pub network: Option<String>,
    /// Locality, accepted.
    #[serde(default)]
    pub locality: Option<String>,
    /// Load-balancing weight, accepted.
    #[serde(default)]
    pub weight: Option<u32>,
    /// Service account, accepted.
    #[serde(default)]
    pub service_account: Option<String>,
}

const PROTOCOLS: &[(&str, Protocol)] = &[
    ("HTTP", Protocol::Http),
    ("HTTPS", Protocol::Https),
    ("GRPC", Protocol::Grpc),
    ("HTTP2", Protocol::Http2),
    ("TCP", Protocol::Tcp),
    ("TLS", Protocol::Tls),
    ("MONGO", Protocol::Mongo),
];

const RESOLUTIONS: &[(&str, Resolution)] = &[
    ("NONE", Resolution::None),
    ("STATIC", Resolution::Static),
    ("DNS", Resolution::Dns),
    ("DNS_ROUND_ROBIN", Resolution::DnsRoundRobin),
    ("DYNAMIC_DNS", Resolution::DynamicDns),
];

const LOCATIONS: &[&str] = &["MESH_EXTERNAL", "MESH_INTERNAL"];

/// Istio matches protocol names case-insensitively.
fn parse_protocol(name: &str) -> Option<Protocol> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, p)| *p)
}

fn parse_resolution(name: &str) -> Option<Resolution> {
    RESOLUTIONS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn names(list: &[(&'static str, impl Copy)]) -> String {
    list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// A host's wildcard form: `*.example.com`.
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

/// An address of `spec.addresses`: a single IP or a CIDR.
pub fn parse_address(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

impl ServiceEntry {
    /// The resolution in force (`NONE` when unset).
    pub fn resolution(&self) -> Resolution {
        self.resolution
            .as_deref()
            .and_then(parse_resolution)
            .unwrap_or(Resolution::None)
    }

    /// Ports in snapshot form.
    pub fn service_ports(&self) -> Vec<ServicePort> {
        self.ports
            .iter()
            .map(|p| ServicePort {
                number: p.number as u16,
                name: p.name.clone(),
                protocol: port_protocol(p),
                target_port: p.target_port.map(|t| t as u16),
            })
            .collect()
    }

    /// Endpoints in snapshot form.
    pub fn service_endpoints(&self) -> Vec<Endpoint> {
        self.endpoints
            .iter()
            .map(|e| Endpoint {
                address: e.address.clone(),
                ports: e
                    .ports
                    .iter()
                    .map(|(n, p)| (n.clone(), *p as u16))
                    .collect::<HashMap<_, _>>(),
            })
            .collect()
    }

    /// `spec.addresses` parsed (validated, so every entry parses).
    pub fn address_nets(&self) -> Vec<IpNet> {
        self.addresses.iter().filter_map(|a| parse_address(a)).collect()
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let resolution = match self.resolution.as_deref() {
            None => Some(Resolution::None),
            Some(r) => {
                let parsed = parse_resolution(r);
                if parsed.is_none() {
                    errors.push(FieldError::new(
                        "spec.resolution",
                        format!("unknown resolution \"{r}\" (supported: {})", names(RESOLUTIONS)),
                    ));
                }
                parsed
            }
        };
        if let Some(l) = self.location.as_deref() {
            if !LOCATIONS.contains(&l) {
                errors.push(FieldError::new(
                    "spec.location",
                    format!("unknown location \"{l}\" (supported: {})", LOCATIONS.join(", ")),
                ));
            }
        }
        self.validate_hosts(resolution, &mut errors);
        for (i, a) in self.addresses.iter().enumerate() {
            if parse_address(a).is_none() {
                errors.push(FieldError::new(
                    format!("spec.addresses[{i}]"),
                    format!("invalid IP address or CIDR \"{a}\""),
                ));
            }
        }
        self.validate_ports(&mut errors);
        self.validate_endpoints(resolution, &mut errors);
        errors
    }

    fn validate_hosts(&self, resolution: Option<Resolution>, errors: &mut Vec<FieldError>) {
        if self.hosts.is_empty() {
            errors.push(FieldError::new("spec.hosts", "at least one host is required"));
        }
        let mut seen = HashSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let field = format!("spec.hosts[{i}]");
            if host == "*" {
                errors.push(FieldError::new(field, "a bare wildcard \"*\" host is not allowed"));
                continue;
            }
            if let Some(reason) = host_problem(host) {
                errors.push(FieldError::new(field, reason));
                continue;
            }
            if is_wildcard(host)
                && !matches!(resolution, Some(Resolution::None | Resolution::DynamicDns) | None)
            {
                errors.push(FieldError::new(
                    field,
                    format!("wildcard host \"{host}\" requires resolution NONE or DYNAMIC_DNS"),
                ));
                continue;
            }
            if !seen.insert(HostName::new(host)) {
                errors.push(FieldError::new(field, format!("duplicate host \"{host}\"")));
            }
        }
    }

    fn validate_ports(&self, errors: &mut Vec<FieldError>) {
        let mut numbers = HashSet::new();
        let mut port_names = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let field = |f: &str| format!("spec.ports[{i}].{f}");
            if !(1..=65535).contains(&p.number) {
                errors.push(FieldError::new(
                    field("number"),
                    format!("port {} out of range 1-65535", p.number),
                ));
            } else if !numbers.insert(p.number) {
                errors.push(FieldError::new(
                    field("number"),
                    format!("duplicate port {}", p.number),
                ));
            }
            if !p.name.is_empty() && !port_names.insert(p.name.as_str()) {
                errors.push(FieldError::new(
                    field("name"),
                    format!("duplicate port name \"{}\"", p.name),
                ));
            }
            if let Some(proto) = p.protocol.as_deref() {
                if parse_protocol(proto).is_none() {
                    errors.push(FieldError::new(
                        field("protocol"),
                        format!("unknown protocol \"{proto}\" (supported: {})", names(PROTOCOLS)),
                    ));
                }
            }
            if let Some(t) = p.target_port {
                if !(1..=65535).contains(&t) {
                    errors.push(FieldError::new(
                        field("targetPort"),
                        format!("port {t} out of range 1-65535"),
                    ));
                }
            }
        }
    }

    fn validate_endpoints(&self, resolution: Option<Resolution>, errors: &mut Vec<FieldError>) {
        if resolution == Some(Resolution::Static) && self.endpoints.is_empty() {
            errors.push(FieldError::new(
                "spec.endpoints",
                "resolution STATIC requires at least one endpoint",
            ));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            let field = format!("spec.endpoints[{i}].address");
            if e.address.is_empty() {
                errors.push(FieldError::new(field, "Required value"));
            } else if resolution == Some(Resolution::Static) && e.address.parse::<IpAddr>().is_err() {
                errors.push(FieldError::new(
                    field,
                    format!("resolution STATIC requires an IP address, got \"{}\"", e.address),
                ));
            }
            for (name, port) in &e.ports {
                if !(1..=65535).contains(port) {
                    errors.push(FieldError::new(
                        format!("spec.endpoints[{i}].ports.{name}"),
                        format!("port {port} out of range 1-65535"),
                    ));
                }
            }
        }
    }
}

/// Why `host` is not a valid (possibly wildcard) DNS name, if it is not.
fn host_problem(host: &str) -> Option<String> {
    let rest = host.strip_prefix("*.").unwrap_or(host);
    let valid = !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid {
        None
    } else {
        Some(format!("invalid host \"{host}\": must be a DNS name, optionally starting with \"*.\""))
    }
}

/// A port's protocol: `protocol`, else the name prefix (`http-web`), else TCP.
fn port_protocol(p: &Port) -> Protocol {
    if let Some(proto) = p.protocol.as_deref() {
        return parse_protocol(proto).unwrap_or(Protocol::Tcp);
    }
    let prefix = p.name.split('-').next().unwrap_or("");
    parse_protocol(prefix).unwrap_or(Protocol::Tcp)
}

impl Kind for ServiceEntry {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "ServiceEntry",
        group: "networking.istio.io",
        versions: &["v1", "v1beta1", "v1alpha3"],
        plural: "serviceentries",
        short_names: &["se"],
        namespaced: true,
    };

    fn parse(spec: &Value, meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let se: ServiceEntry = typed_spec(spec)?;
        let errors = se.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        if se.workload_selector.is_some() {
            tracing::warn!(
                namespace = meta.namespace.as_deref().unwrap_or_default(),
                name = %meta.name,
                "ServiceEntry spec.workloadSelector is not supported and is ignored"
            );
        }
        Ok(se)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse::tests::errors_of;

    fn se(spec: &str) -> String {
        format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: httpbin.org\n  namespace: istio-egress\nspec:\n{spec}")
    }

    #[test]
    fn validation_errors() {
        let p = "ServiceEntry istio-egress/httpbin.org: ";
        let cases = [
            ("  hosts: []\n", "spec.hosts: at least one host is required"),
            ("  hosts: ['*']\n", "spec.hosts[0]: a bare wildcard \"*\" host is not allowed"),
            ("  hosts: ['*.example.com']\n  resolution: DNS\n", "spec.hosts[0]: wildcard host \"*.example.com\" requires resolution NONE or DYNAMIC_DNS"),
            ("  hosts: ['a..com']\n", "spec.hosts[0]: invalid host"),
            ("  hosts: [a.com]\n  ports: [{number: 0, name: x}]\n", "spec.ports[0].number: port 0 out of range 1-65535"),
            ("  hosts: [a.com]\n  ports: [{number: 70000, name: x}]\n", "spec.ports[0].number: port 70000 out of range 1-65535"),
            ("  hosts: [a.com]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 80, name: web, protocol: HTTP}\n", "spec.ports[1].number: duplicate port 80"),
            ("  hosts: [a.com]\n  ports:\n  - {number: 80, name: http}\n  - {number: 81, name: http}\n", "spec.ports[1].name: duplicate port name \"http\""),
            ("  hosts: [a.com]\n  ports: [{number: 80, name: x, protocol: QUIC}]\n", "spec.ports[0].protocol: unknown protocol \"QUIC\""),
            ("  hosts: [a.com]\n  ports: [{number: 80, name: x, targetPort: 65536}]\n", "spec.ports[0].targetPort: port 65536 out of range 1-65535"),
            ("  hosts: [a.com]\n  ports: [{number: http, name: x}]\n", "spec.ports[0].number: invalid type"),
            ("  hosts: [a.com]\n  resolution: MAGIC\n", "spec.resolution: unknown resolution \"MAGIC\""),
            ("  hosts: [a.com]\n  location: MESH_NEARBY\n", "spec.location: unknown location"),
            ("  hosts: [a.com]\n  resolution: STATIC\n", "spec.endpoints: resolution STATIC requires at least one endpoint"),
            ("  hosts: [a.com]\n  resolution: STATIC\n  endpoints: [{address: a.com}]\n", "spec.endpoints[0].address: resolution STATIC requires an IP address, got \"a.com\""),
            ("  hosts: [a.com]\n  addresses: [10.0.0.300]\n", "spec.addresses[0]: invalid IP address or CIDR \"10.0.0.300\""),
            ("  hosts: [a.com]\n  addresses: [10.0.0.0/33]\n", "spec.addresses[0]: invalid IP address or CIDR"),
            ("  hosts: [a.com]\n  hostz: []\n", "spec.hostz: unknown field `hostz`"),
        ];
        for (spec, want) in cases {
            let got = errors_of(&se(spec));
            let want = format!("{p}{want}");
            assert!(got.iter().any(|e| e.starts_with(&want)), "want {want:?}\n got {got:?}");
        }
    }

    #[test]
    fn valid_entries() {
        let cases = [
            "  hosts: ['*.example.com']\n  resolution: DYNAMIC_DNS\n",
            "  hosts: ['*.example.com']\n",
            "  hosts: [a.com]\n  addresses: [10.0.0.1, 10.1.0.0/16, 'fd00::1']\n  ports: [{number: 443, name: tls, protocol: tls}]\n",
            "  hosts: [a.com]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.1, ports: {http: 8080}}]\n",
            "  hosts: [a.com]\n  workloadSelector: {labels: {app: x}}\n  exportTo: ['.']\n",
        ];
        for spec in cases {
            assert_eq!(errors_of(&se(spec)), Vec::<String>::new(), "{spec}");
        }
    }
}

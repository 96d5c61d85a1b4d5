//! Istio `DestinationRule`: how the waypoint talks to a host once it is
//! chosen. egret reads `trafficPolicy.tls` and `portLevelSettings[].tls`
//! (TLS origination); other policy fields are accepted with a warning.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::config::object::{FieldError, ObjectMeta};
use crate::config::snapshot::{DestinationPolicy, TlsMode, UpstreamTls};
use crate::net::HostName;

/// DestinationRule `spec`, as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    /// `spec.host`: a service host, `*.suffix` or `*`.
    #[serde(default)]
    pub host: String,
    /// `spec.trafficPolicy`.
    #[serde(default)]
    pub traffic_policy: Option<Box<TrafficPolicy>>,
    /// `spec.subsets`: accepted, unused (no VirtualService subset routing yet).
    #[serde(default)]
    pub subsets: Vec<Value>,
    /// `spec.exportTo`, accepted (single host: everything is visible).
    #[serde(default)]
    pub export_to: Vec<String>,
    /// `spec.workloadSelector`: accepted, unused.
    #[serde(default)]
    pub workload_selector: Option<Value>,
}

/// `trafficPolicy` (top level, or one port's).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    /// `tls`: TLS origination settings.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// `portLevelSettings` (top level only).
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// `loadBalancer`: accepted, unused.
    #[serde(default)]
    pub load_balancer: Option<Value>,
    /// `connectionPool`: accepted, unused.
    #[serde(default)]
    pub connection_pool: Option<Value>,
    /// `outlierDetection`: accepted, unused.
    #[serde(default)]
    pub outlier_detection: Option<Value>,
    /// `tunnel`: accepted, unused.
    #[serde(default)]
    pub tunnel: Option<Value>,
    /// `proxyProtocol`: accepted, unused.
    #[serde(default)]
    pub proxy_protocol: Option<Value>,
}

/// One `portLevelSettings[]` entry: replaces the top-level settings whole
/// for its port.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    /// `port`: the service port it applies to.
    #[serde(default)]
    pub port: Option<PortSelector>,
    /// `tls`.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// `loadBalancer`: accepted, unused.
    #[serde(default)]
    pub load_balancer: Option<Value>,
    /// `connectionPool`: accepted, unused.
    #[serde(default)]
    pub connection_pool: Option<Value>,
    /// `outlierDetection`: accepted, unused.
    #[serde(default)]
    pub outlier_detection: Option<Value>,
}

/// `port: {number}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// The service port number.
    #[serde(default)]
    pub number: u32,
}

/// `tls` (Istio's ClientTLSSettings), as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTls {
    /// `mode` (`DISABLE` when unset).
    #[serde(default)]
    pub mode: Option<String>,
    /// `clientCertificate`: PEM file path.
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// `privateKey`: PEM file path.
    #[serde(default)]
    pub private_key: Option<String>,
    /// `caCertificates`: PEM file path.
    #[serde(default)]
    pub ca_certificates: Option<String>,
    /// `caCrl`: refused (egret does not check revocation lists).
    #[serde(default)]
    pub ca_crl: Option<String>,
    /// `credentialName`: a Secret in the rule's namespace.
    #[serde(default)]
    pub credential_name: Option<String>,
    /// `subjectAltNames`.
    #[serde(default)]
    pub subject_alt_names: Option<Vec<String>>,
    /// `sni`.
    #[serde(default)]
    pub sni: Option<String>,
    /// `insecureSkipVerify`.
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
}

const MODES: &[(&str, TlsMode)] = &[
    ("DISABLE", TlsMode::Disable),
    ("SIMPLE", TlsMode::Simple),
    ("MUTUAL", TlsMode::Mutual),
    ("ISTIO_MUTUAL", TlsMode::IstioMutual),
];

fn parse_mode(name: &str) -> Option<TlsMode> {
    MODES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
}

/// Empty strings mean "unset" in proto3 YAML.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl ClientTls {
    /// The settings in snapshot form (validated, so the mode parses).
    pub fn compile(&self) -> UpstreamTls {
        UpstreamTls {
            mode: set(&self.mode)
                .and_then(parse_mode)
                .unwrap_or(TlsMode::Disable),
            client_certificate: set(&self.client_certificate).map(PathBuf::from),
            private_key: set(&self.private_key).map(PathBuf::from),
            ca_certificates: set(&self.ca_certificates).map(PathBuf::from),
            credential_name: set(&self.credential_name).map(String::from),
            sni: set(&self.sni).map(HostName::new),
            subject_alt_names: self.subject_alt_names.clone().unwrap_or_default(),
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
        }
    }

    /// Istio's rules for ClientTLSSettings; `field` is the path of this `tls`.
    fn validate(&self, field: &str, errors: &mut Vec<FieldError>) {
        let at = |f: &str| format!("{field}.{f}");
        let mode = match set(&self.mode) {
            None => TlsMode::Disable,
            Some(m) => match parse_mode(m) {
                Some(mode) => mode,
                None => {
                    let supported: Vec<&str> = MODES.iter().map(|(n, _)| *n).collect();
                    errors.push(FieldError::new(
                        at("mode"),
                        format!(
                            "unknown TLS mode \"{m}\" (supported: {})",
                            supported.join(", ")
                        ),
                    ));
                    return;
                }
            },
        };
        if set(&self.ca_crl).is_some() {
            errors.push(FieldError::new(
                at("caCrl"),
                "certificate revocation lists are not supported by egret",
            ));
        }
        let files = [
            ("clientCertificate", &self.client_certificate),
            ("privateKey", &self.private_key),
            ("caCertificates", &self.ca_certificates),
        ];
        if mode == TlsMode::IstioMutual {
            for (name, value) in files
                .iter()
                .chain([("credentialName", &self.credential_name)].iter())
            {
                if set(value).is_some() {
                    errors.push(FieldError::new(
                        at(name),
                        "cannot be set when mode is ISTIO_MUTUAL (the mesh identity is used)",
                    ));
                }
            }
            return;
        }
        let skip_verify = self.insecure_skip_verify.unwrap_or(false);
        if skip_verify && matches!(mode, TlsMode::Simple | TlsMode::Mutual) {
            if set(&self.ca_certificates).is_some() {
                errors.push(FieldError::new(
                    at("caCertificates"),
                    "cannot be set when insecureSkipVerify is true",
                ));
            }
            if self.subject_alt_names.is_some() {
                errors.push(FieldError::new(
                    at("subjectAltNames"),
                    "cannot be set when insecureSkipVerify is true",
                ));
            }
            if mode == TlsMode::Simple && set(&self.credential_name).is_some() {
                errors.push(FieldError::new(
                    at("credentialName"),
                    "cannot be set when insecureSkipVerify is true and mode is SIMPLE",
                ));
            }
        }
        if matches!(mode, TlsMode::Simple | TlsMode::Mutual) && set(&self.credential_name).is_some()
        {
            for (name, value) in files {
                if set(value).is_some() {
                    errors.push(FieldError::new(
                        at(name),
                        "cannot be set together with credentialName (the Secret holds the key material)",
                    ));
                }
            }
            return;
        }
        if mode == TlsMode::Mutual {
            if set(&self.client_certificate).is_none() {
                errors.push(FieldError::new(
                    at("clientCertificate"),
                    "client certificate required for mutual tls (or set credentialName)",
                ));
            }
            if set(&self.private_key).is_none() {
                errors.push(FieldError::new(
                    at("privateKey"),
                    "private key required for mutual tls (or set credentialName)",
                ));
            }
        }
        if mode == TlsMode::Simple
            && (set(&self.client_certificate).is_some() || set(&self.private_key).is_some())
        {
            tracing::warn!(
                field,
                "clientCertificate/privateKey are ignored with mode SIMPLE"
            );
        }
        if let Some(sni) = set(&self.sni) {
            if sni.parse::<std::net::IpAddr>().is_ok() || !valid_dns_name(sni) {
                errors.push(FieldError::new(
                    at("sni"),
                    format!("invalid SNI \"{sni}\": must be a DNS name"),
                ));
            }
        }
        for (i, san) in self.subject_alt_names.iter().flatten().enumerate() {
            if san.is_empty() {
                errors.push(FieldError::new(
                    format!("{field}.subjectAltNames[{i}]"),
                    "must not be empty",
                ));
            }
        }
        for (name, value) in files {
            if let Some(path) = set(value) {
                if !path.starts_with('/') {
                    errors.push(FieldError::new(
                        at(name),
                        format!("\"{path}\" must be an absolute file path"),
                    ));
                }
            }
        }
    }
}

fn valid_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

impl DestinationRule {
    /// The rule in snapshot form.
    pub fn compile(&self, namespace: &str, name: &str) -> DestinationPolicy {
        let policy = self.traffic_policy.as_ref();
        DestinationPolicy {
            namespace: namespace.to_string(),
            name: name.to_string(),
            host: HostName::new(&self.host),
            tls: policy.and_then(|p| p.tls.as_ref()).map(ClientTls::compile),
            port_tls: policy
                .map(|p| {
                    p.port_level_settings
                        .iter()
                        .filter_map(|s| {
                            let port = s.port.as_ref()?.number as u16;
                            Some((port, s.tls.as_ref().map(ClientTls::compile)))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.host.is_empty() {
            errors.push(FieldError::new("spec.host", "Required value"));
        } else {
            let rest = self.host.strip_prefix("*.").unwrap_or(&self.host);
            if self.host != "*" && !valid_dns_name(rest) {
                errors.push(FieldError::new(
                    "spec.host",
                    format!(
                        "invalid host \"{}\": must be a DNS name, optionally starting with \"*.\"",
                        self.host
                    ),
                ));
            }
        }
        let Some(policy) = &self.traffic_policy else {
            return errors;
        };
        if let Some(tls) = &policy.tls {
            tls.validate("spec.trafficPolicy.tls", &mut errors);
        }
        let mut ports = std::collections::HashSet::new();
        for (i, s) in policy.port_level_settings.iter().enumerate() {
            let field = format!("spec.trafficPolicy.portLevelSettings[{i}]");
            match &s.port {
                None => errors.push(FieldError::new(
                    format!("{field}.port"),
                    "port must be specified",
                )),
                Some(p) if !(1..=65535).contains(&p.number) => errors.push(FieldError::new(
                    format!("{field}.port.number"),
                    format!("port {} out of range 1-65535", p.number),
                )),
                Some(p) if !ports.insert(p.number) => errors.push(FieldError::new(
                    format!("{field}.port.number"),
                    format!("duplicate port {}", p.number),
                )),
                Some(_) => {}
            }
            if let Some(tls) = &s.tls {
                tls.validate(&format!("{field}.tls"), &mut errors);
            }
        }
        errors
    }

    /// Fields egret accepts but does not act on, for a warning.
    fn unused_fields(&self) -> Vec<&'static str> {
        let mut unused = Vec::new();
        if !self.subsets.is_empty() {
            unused.push("subsets");
        }
        if self.workload_selector.is_some() {
            unused.push("workloadSelector");
        }
        if let Some(p) = &self.traffic_policy {
            let port_fields = p.port_level_settings.iter().any(|s| {
                s.load_balancer.is_some()
                    || s.connection_pool.is_some()
                    || s.outlier_detection.is_some()
            });
            if p.load_balancer.is_some()
                || p.connection_pool.is_some()
                || p.outlier_detection.is_some()
                || p.tunnel.is_some()
                || p.proxy_protocol.is_some()
                || port_fields
            {
                unused.push("trafficPolicy (other than tls)");
            }
        }
        unused
    }
}

impl Kind for DestinationRule {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "DestinationRule",
        group: "networking.istio.io",
        versions: &["v1", "v1beta1", "v1alpha3"],
        plural: "destinationrules",
        short_names: &["dr"],
        namespaced: true,
    };

    fn parse(spec: &Value, meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let dr: DestinationRule = typed_spec(spec)?;
        let errors = dr.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let unused = dr.unused_fields();
        if !unused.is_empty() {
            tracing::warn!(
                namespace = meta.namespace.as_deref().unwrap_or_default(),
                name = %meta.name,
                fields = %unused.join(", "),
                "DestinationRule fields not supported by egret are ignored"
            );
        }
        Ok(dr)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::manifests::objects;
    use crate::config::kinds::Spec;
    use crate::config::parse::tests::errors_of;

    fn dr(spec: &str) -> String {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: httpbin.org-tls\n  namespace: istio-egress\nspec:\n{spec}")
    }

    fn compiled(spec: &str) -> DestinationPolicy {
        let objs = objects(&dr(spec));
        let Spec::DestinationRule(rule) = &objs[0].spec else {
            panic!("not a DestinationRule")
        };
        rule.compile("istio-egress", "httpbin.org-tls")
    }

    #[test]
    fn walkthrough_step4c_is_simple_tls() {
        let text =
            include_str!("../../../../deploy/examples/walkthrough/step4c-tls-origination.yaml");
        let objs = objects(text);
        assert_eq!(objs.len(), 2);
        let Spec::DestinationRule(rule) = &objs[1].spec else {
            panic!("second document is the DestinationRule")
        };
        let policy = rule.compile(objs[1].namespace(), objs[1].name());
        assert_eq!(policy.host, "httpbin.org");
        let tls = policy.tls_for_port(80).expect("tls for port 80");
        assert_eq!(tls.mode, TlsMode::Simple);
        assert_eq!(tls.sni, None);
        assert!(tls.subject_alt_names.is_empty());
        assert!(!tls.insecure_skip_verify);
    }

    #[test]
    fn every_api_version_is_served() {
        for v in ["v1", "v1beta1", "v1alpha3"] {
            let text = dr("  host: a.com\n").replace(
                "networking.istio.io/v1",
                &format!("networking.istio.io/{v}"),
            );
            assert_eq!(errors_of(&text), Vec::<String>::new(), "{v}");
        }
    }

    #[test]
    fn every_mode_compiles() {
        let cases = [
            ("  host: a.com\n  trafficPolicy: {tls: {mode: DISABLE}}\n", TlsMode::Disable),
            ("  host: a.com\n  trafficPolicy: {tls: {}}\n", TlsMode::Disable),
            (
                "  host: a.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, sni: API.a.com, subjectAltNames: [x.a.com], caCertificates: /etc/ca.pem}\n",
                TlsMode::Simple,
            ),
            (
                "  host: a.com\n  trafficPolicy:\n    tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}\n",
                TlsMode::Mutual,
            ),
            (
                "  host: a.com\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: client-cred}\n",
                TlsMode::Mutual,
            ),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n", TlsMode::IstioMutual),
        ];
        for (spec, mode) in cases {
            assert_eq!(errors_of(&dr(spec)), Vec::<String>::new(), "{spec}");
            assert_eq!(compiled(spec).tls.unwrap().mode, mode, "{spec}");
        }
        let tls = compiled(cases[2].0).tls.unwrap();
        assert_eq!(tls.sni.as_deref(), Some("api.a.com"));
        assert_eq!(tls.subject_alt_names, ["x.a.com"]);
        assert_eq!(tls.ca_certificates, Some(PathBuf::from("/etc/ca.pem")));
        let tls = compiled(cases[4].0).tls.unwrap();
        assert_eq!(tls.credential_name.as_deref(), Some("client-cred"));
    }

    #[test]
    fn port_level_settings_replace_the_top_level_whole() {
        let spec = "  host: a.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, sni: top.a.com}\n    portLevelSettings:\n    - port: {number: 8443}\n      tls: {mode: MUTUAL, credentialName: c}\n    - port: {number: 8080}\n      loadBalancer: {simple: ROUND_ROBIN}\n";
        let policy = compiled(spec);
        assert_eq!(
            policy.tls_for_port(443).unwrap().sni.as_deref(),
            Some("top.a.com")
        );
        let port = policy.tls_for_port(8443).unwrap();
        assert_eq!(port.mode, TlsMode::Mutual);
        // Nothing inherited from the top level.
        assert_eq!(port.sni, None);
        // A port entry without tls means no TLS on that port.
        assert_eq!(policy.tls_for_port(8080), None);
    }

    #[test]
    fn host_matching_prefers_the_most_specific() {
        let rule = |host: &str| {
            Arc::new(DestinationPolicy {
                namespace: "n".into(),
                name: host.into(),
                host: HostName::new(host),
                tls: None,
                port_tls: vec![],
            })
        };
        let h = HostName::new;
        assert_eq!(rule("a.com").host_specificity(&h("a.com")), Some(usize::MAX));
        assert!(rule("*.a.com").host_specificity(&h("x.a.com")).is_some());
        assert!(rule("*.a.com").host_specificity(&h("*.x.a.com")).is_some());
        assert_eq!(rule("*.a.com").host_specificity(&h("a.com")), None);
        assert_eq!(rule("*.a.com").host_specificity(&h("xa.com")), None);
        assert_eq!(rule("*").host_specificity(&h("b.org")), Some(0));
        assert!(
            rule("*.x.a.com").host_specificity(&h("y.x.a.com"))
                > rule("*.a.com").host_specificity(&h("y.x.a.com"))
        );
    }

    #[test]
    fn validation_errors() {
        let p = "DestinationRule istio-egress/httpbin.org-tls: ";
        let cases = [
            ("  trafficPolicy: {}\n", "spec.host: Required value"),
            ("  host: 'a..com'\n", "spec.host: invalid host \"a..com\""),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: STRICT}}\n", "spec.trafficPolicy.tls.mode: unknown TLS mode \"STRICT\" (supported: DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL)"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: MUTUAL}}\n", "spec.trafficPolicy.tls.clientCertificate: client certificate required for mutual tls"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem}}\n", "spec.trafficPolicy.tls.privateKey: private key required for mutual tls"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}\n", "spec.trafficPolicy.tls.caCertificates: cannot be set together with credentialName"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [a.com]}}\n", "spec.trafficPolicy.tls.subjectAltNames: cannot be set when insecureSkipVerify is true"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}\n", "spec.trafficPolicy.tls.caCertificates: cannot be set when insecureSkipVerify is true"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCertificates: /ca.pem}}\n", "spec.trafficPolicy.tls.caCertificates: cannot be set when mode is ISTIO_MUTUAL"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, caCrl: /crl.pem}}\n", "spec.trafficPolicy.tls.caCrl: certificate revocation lists are not supported"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: ca.pem}}\n", "spec.trafficPolicy.tls.caCertificates: \"ca.pem\" must be an absolute file path"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, sni: 10.0.0.1}}\n", "spec.trafficPolicy.tls.sni: invalid SNI \"10.0.0.1\""),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: maybe}}\n", "spec.trafficPolicy.tls.insecureSkipVerify: invalid type"),
            ("  host: a.com\n  trafficPolicy:\n    portLevelSettings:\n    - tls: {mode: SIMPLE}\n", "spec.trafficPolicy.portLevelSettings[0].port: port must be specified"),
            ("  host: a.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 70000}\n", "spec.trafficPolicy.portLevelSettings[0].port.number: port 70000 out of range 1-65535"),
            ("  host: a.com\n  trafficPolicy:\n    portLevelSettings:\n    - {port: {number: 443}}\n    - {port: {number: 443}}\n", "spec.trafficPolicy.portLevelSettings[1].port.number: duplicate port 443"),
            ("  host: a.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL}\n", "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate: client certificate required"),
            ("  host: a.com\n  trafficPolicy: {tls: {mode: SIMPLE, sniHost: a}}\n", "spec.trafficPolicy.tls.sniHost: unknown field `sniHost`"),
        ];
        for (spec, want) in cases {
            let got = errors_of(&dr(spec));
            let want = format!("{p}{want}");
            assert!(
                got.iter().any(|e| e.starts_with(&want)),
                "want {want:?}\n got {got:?}"
            );
        }
    }

    #[test]
    fn accepted_fields() {
        let cases = [
            "  host: '*.example.com'\n  trafficPolicy: {tls: {mode: SIMPLE}}\n",
            "  host: '*'\n",
            "  host: a.com\n  exportTo: ['.']\n  subsets: [{name: v1, labels: {version: v1}}]\n",
            "  host: a.com\n  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 10}}\n    tls: {mode: SIMPLE, insecureSkipVerify: true}\n",
            "  host: a.com\n  trafficPolicy: {tls: {mode: MUTUAL, insecureSkipVerify: true, credentialName: c}}\n",
        ];
        for spec in cases {
            assert_eq!(errors_of(&dr(spec)), Vec::<String>::new(), "{spec}");
        }
    }
}

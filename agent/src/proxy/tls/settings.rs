//! What one TLS origination needs, decided per request from the snapshot:
//! the rule's settings, the server name to send (DestinationRule `sni`, else
//! the request's host), the names the certificate must match
//! (`subjectAltNames`, else the host) and the Secret `credentialName` names.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::config::snapshot::{
    DestinationPolicy, Service, Snapshot, TlsMode, TlsSecret, UpstreamTls,
};

use super::error::TlsError;
use super::material::fingerprint;
use crate::net::HostName;

/// TLS toward one upstream, fully decided.
#[derive(Clone, Debug)]
pub struct OriginTls {
    /// The DestinationRule the settings come from.
    pub rule: Arc<DestinationPolicy>,
    /// The settings in force for the port.
    pub settings: UpstreamTls,
    /// SNI to send.
    pub server_name: String,
    /// Names the server certificate must be valid for (any one).
    pub verify_names: Vec<String>,
    /// The Secret `credentialName` names, when set.
    pub secret: Option<Arc<TlsSecret>>,
    /// ALPN protocols to offer, most preferred first.
    pub alpn: Vec<Vec<u8>>,
}

impl OriginTls {
    /// The TLS to use for a request to `service` port `port` with host
    /// `host` (Host header or authority, port allowed). `None`: plain text.
    pub fn for_request(
        snapshot: &Snapshot,
        service: &Service,
        port: u16,
        host: Option<&str>,
    ) -> Result<Option<OriginTls>, TlsError> {
        let Some((rule, settings)) = snapshot.upstream_tls(service, port) else {
            return Ok(None);
        };
        let reference = rule.reference();
        match settings.mode {
            TlsMode::Disable => return Ok(None),
            TlsMode::IstioMutual => return Err(TlsError::IstioMutual { rule: reference }),
            TlsMode::Simple | TlsMode::Mutual => {}
        }
        // The request's host names the upstream; a wildcard service host
        // cannot, so it is used only when it is a real name.
        let host = host
            .map(strip_port)
            .filter(|h| !h.is_empty())
            .map(HostName::new)
            .or_else(|| (!service.host.is_wildcard()).then(|| service.host.clone()));
        let server_name = match settings.sni.clone().or_else(|| host.clone()) {
            Some(name) => name,
            None => {
                return Err(TlsError::NoServerName {
                    rule: reference,
                    host: service.host.to_string(),
                })
            }
        };
        let verify_names = if !settings.subject_alt_names.is_empty() {
            settings.subject_alt_names.clone()
        } else {
            vec![host.unwrap_or_else(|| server_name.clone()).to_string()]
        };
        let secret = match &settings.credential_name {
            None => None,
            Some(name) => Some(snapshot.secret(&rule.namespace, name).cloned().ok_or_else(
                || TlsError::SecretMissing {
                    rule: reference.clone(),
                    namespace: rule.namespace.clone(),
                    name: name.clone(),
                },
            )?),
        };
        Ok(Some(OriginTls {
            rule,
            settings,
            server_name: server_name.to_string(),
            verify_names,
            secret,
            // The upstream picks: HTTP/2 multiplexes one connection.
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }))
    }

    /// `namespace/name` of the rule.
    pub fn rule_ref(&self) -> String {
        self.rule.reference()
    }

    /// Identifies everything that shapes the handshake except file
    /// contents: two origins with equal keys may share a connection.
    pub fn key(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.settings.hash(&mut h);
        self.server_name.hash(&mut h);
        self.verify_names.hash(&mut h);
        self.alpn.hash(&mut h);
        if let Some(s) = &self.secret {
            for part in [&s.cert, &s.key, &s.ca] {
                part.as_deref().map(fingerprint).hash(&mut h);
            }
        }
        h.finish()
    }
}

/// `host` of `host:port` / `[v6]:port`.
pub fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::{Protocol, Resolution, ServicePort, WaypointBinding};

    fn service(host: &str) -> Service {
        Service {
            namespace: "istio-egress".into(),
            name: "se".into(),
            host: host.into(),
            vips: vec![],
            ports: vec![ServicePort {
                number: 80,
                name: "http".into(),
                protocol: Protocol::Http,
                target_port: Some(443),
            }],
            resolution: Resolution::Dns,
            endpoints: vec![],
            waypoint: WaypointBinding::None,
        }
    }

    fn tls(mode: TlsMode) -> UpstreamTls {
        UpstreamTls {
            mode,
            client_certificate: None,
            private_key: None,
            ca_certificates: None,
            credential_name: None,
            sni: None,
            subject_alt_names: vec![],
            insecure_skip_verify: false,
        }
    }

    fn snapshot(
        host: &str,
        tls: UpstreamTls,
        port_tls: Vec<(u16, Option<UpstreamTls>)>,
    ) -> Snapshot {
        Snapshot {
            destination_rules: vec![Arc::new(DestinationPolicy {
                namespace: "istio-egress".into(),
                name: "dr".into(),
                host: host.into(),
                tls: Some(tls),
                port_tls,
            })],
            ..Snapshot::default()
        }
    }

    #[test]
    fn sni_and_names_default_to_the_request_host_without_port() {
        let s = snapshot("httpbin.org", tls(TlsMode::Simple), vec![]);
        let o = OriginTls::for_request(&s, &service("httpbin.org"), 80, Some("HTTPBIN.org:80"))
            .unwrap()
            .unwrap();
        assert_eq!(o.server_name, "httpbin.org");
        assert_eq!(o.verify_names, ["httpbin.org"]);
        assert_eq!(o.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn explicit_sni_and_subject_alt_names_win() {
        let mut t = tls(TlsMode::Simple);
        t.sni = Some("front.example".into());
        t.subject_alt_names = vec!["a.example".into(), "b.example".into()];
        let s = snapshot("httpbin.org", t, vec![]);
        let o = OriginTls::for_request(&s, &service("httpbin.org"), 80, None)
            .unwrap()
            .unwrap();
        assert_eq!(o.server_name, "front.example");
        assert_eq!(o.verify_names, ["a.example", "b.example"]);
    }

    #[test]
    fn wildcard_services_take_the_name_from_the_request() {
        let s = snapshot("*.example.test", tls(TlsMode::Simple), vec![]);
        let svc = service("*.example.test");
        let o = OriginTls::for_request(&s, &svc, 80, Some("a.example.test"))
            .unwrap()
            .unwrap();
        assert_eq!(o.server_name, "a.example.test");
        let err = OriginTls::for_request(&s, &svc, 80, None).unwrap_err();
        assert!(matches!(err, TlsError::NoServerName { .. }), "{err}");
    }

    #[test]
    fn modes_and_ports() {
        let s = snapshot(
            "httpbin.org",
            tls(TlsMode::Simple),
            vec![(8080, Some(tls(TlsMode::Disable))), (9090, None)],
        );
        let svc = service("httpbin.org");
        assert!(OriginTls::for_request(&s, &svc, 80, None)
            .unwrap()
            .is_some());
        assert!(OriginTls::for_request(&s, &svc, 8080, None)
            .unwrap()
            .is_none());
        assert!(OriginTls::for_request(&s, &svc, 9090, None)
            .unwrap()
            .is_none());
        assert!(OriginTls::for_request(&Snapshot::default(), &svc, 80, None)
            .unwrap()
            .is_none());
        let istio = snapshot("httpbin.org", tls(TlsMode::IstioMutual), vec![]);
        let err = OriginTls::for_request(&istio, &svc, 80, None).unwrap_err();
        assert!(err.to_string().contains("ISTIO_MUTUAL"), "{err}");
        // A rule of another namespace does not apply.
        let other = service("httpbin.org");
        let mut other_ns = other.clone();
        other_ns.namespace = "elsewhere".into();
        assert!(OriginTls::for_request(&s, &other_ns, 80, None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_missing_secret_names_rule_and_secret() {
        let mut t = tls(TlsMode::Mutual);
        t.credential_name = Some("client-cred".into());
        let s = snapshot("httpbin.org", t, vec![]);
        let err = OriginTls::for_request(&s, &service("httpbin.org"), 80, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DestinationRule istio-egress/dr: credentialName: Secret istio-egress/client-cred not found"
        );
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.com:8080"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:443"), "::1");
    }
}

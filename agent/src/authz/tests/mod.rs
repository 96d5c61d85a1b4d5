//! Table-driven tests of the policy engine; cases follow Istio's authz builder
//! testdata, ztunnel's rbac tests and the walkthrough.

mod decision;
mod matching;
mod tcp;
mod validation;
mod walkthrough;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    compile, AuthorizationPolicySpec, AuthzError, CompiledPolicy, HttpAttrs, RequestAttrs,
    TargetKey,
};

/// Compiles `yaml` (a `spec`) as policy `ns/name`.
fn try_policy(
    ns: &str,
    name: &str,
    annotations: &[(&str, &str)],
    yaml: &str,
) -> Result<CompiledPolicy, AuthzError> {
    let spec: AuthorizationPolicySpec = serde_yaml::from_str(yaml).expect("spec parses");
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    compile(ns, name, &annotations, &spec)
}

/// Compiles a policy that must be valid.
fn policy(ns: &str, name: &str, yaml: &str) -> Arc<CompiledPolicy> {
    Arc::new(try_policy(ns, name, &[], yaml).unwrap_or_else(|e| panic!("{e}")))
}

/// The walkthrough's waypoint, serving ServiceEntry istio-egress/httpbin.org.
fn target() -> TargetKey<'static> {
    crate::testing::manifests::waypoint_target()
}

/// An owned request description; [`Req::attrs`] borrows it like the proxy would.
#[derive(Clone)]
struct Req {
    principal: Option<&'static str>,
    source_ip: IpAddr,
    remote_ip: IpAddr,
    destination: SocketAddr,
    sni: Option<&'static str>,
    http: Option<(&'static str, &'static str, &'static str, HeaderMap)>,
}

impl Req {
    /// `GET http://httpbin.org/get` from bookinfo's productpage over mTLS.
    fn http() -> Self {
        Req {
            principal: Some("cluster.local/ns/bookinfo/sa/bookinfo-productpage"),
            source_ip: "10.0.74.45".parse().unwrap(),
            remote_ip: "10.0.74.45".parse().unwrap(),
            destination: "240.240.0.2:80".parse().unwrap(),
            sni: None,
            http: Some(("httpbin.org", "GET", "/get", HeaderMap::new())),
        }
    }

    /// The same peer, as a TCP connection.
    fn tcp() -> Self {
        Req {
            http: None,
            ..Self::http()
        }
    }

    fn plaintext(mut self) -> Self {
        self.principal = None;
        self
    }

    fn principal(mut self, p: &'static str) -> Self {
        self.principal = Some(p);
        self
    }

    fn source(mut self, ip: &str) -> Self {
        self.source_ip = ip.parse().unwrap();
        self
    }

    fn remote(mut self, ip: &str) -> Self {
        self.remote_ip = ip.parse().unwrap();
        self
    }

    fn dest(mut self, addr: &str) -> Self {
        self.destination = addr.parse().unwrap();
        self
    }

    fn sni(mut self, sni: &'static str) -> Self {
        self.sni = Some(sni);
        self
    }

    fn authority(mut self, a: &'static str) -> Self {
        self.http.as_mut().unwrap().0 = a;
        self
    }

    fn method(mut self, m: &'static str) -> Self {
        self.http.as_mut().unwrap().1 = m;
        self
    }

    fn path(mut self, p: &'static str) -> Self {
        self.http.as_mut().unwrap().2 = p;
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.http.as_mut().unwrap().3.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    fn attrs(&self) -> RequestAttrs<'_> {
        RequestAttrs {
            source_principal: self.principal,
            source_ip: self.source_ip,
            remote_ip: self.remote_ip,
            destination: self.destination,
            sni: self.sni,
            http: self
                .http
                .as_ref()
                .map(|(authority, method, path, headers)| HttpAttrs {
                    authority,
                    method,
                    path,
                    headers,
                }),
        }
    }
}

//! The walkthrough's manifests as text and objects, and what a snapshot's
//! policies decide for the walkthrough's request.

use crate::authz::{GatewayKey, HttpAttrs, NamespacedName, RequestAttrs, TargetKey};
use crate::config::object::{Object, DEFAULT_NAMESPACE};
use crate::config::parse::parse_text;
use crate::config::snapshot::Snapshot;

/// The walkthrough's Step 2 Gateway.
pub const GATEWAY: &str = include_str!("../config/testdata/step2-gateway.yaml");
/// The walkthrough's Step 3 ServiceEntry.
pub const SERVICE_ENTRY: &str = include_str!("../config/testdata/step3-serviceentry.yaml");
/// The walkthrough's Step 4a AuthorizationPolicy: only `GET /get` of
/// httpbin.org through the waypoint.
pub const STEP_4A_POLICY: &str = include_str!("../config/testdata/step4a-authorizationpolicy.yaml");

/// AuthorizationPolicy `name` of `istio-egress` on the walkthrough's
/// waypoint: `action` with `rules` (YAML lines under `rules:`).
pub fn waypoint_policy(name: &str, action: &str, rules: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: {name}
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    name: egress-waypoint
    group: gateway.networking.k8s.io
  action: {action}
  rules:
{rules}"
    )
}

/// What `kubectl create namespace istio-egress` + the two `kubectl label ns` make.
pub const EGRESS_NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-egress\n  labels:\n    istio.io/dataplane-mode: ambient\n    istio.io/use-waypoint: egress-waypoint\n";

/// Every object in `text`, which must all be valid.
pub fn objects(text: &str) -> Vec<Object> {
    parse_text(text, "fixture.yaml", DEFAULT_NAMESPACE)
        .expect("fixture parses")
        .into_iter()
        .flat_map(|d| d.objects)
        .map(|r| r.expect("fixture object is valid"))
        .collect()
}

/// A ServiceEntry `name` in `ns` with `labels` (YAML lines) and `spec` (YAML lines).
pub fn service_entry(ns: &str, name: &str, labels: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n{labels}spec:\n{spec}"
    )
}

/// Whether `method path` from bookinfo's productpage to httpbin.org,
/// through the walkthrough's waypoint, is allowed by `snapshot`'s policies.
pub fn http_allowed(snapshot: &Snapshot, method: &str, path: &str) -> bool {
    let headers = http::HeaderMap::new();
    allowed(
        snapshot,
        Some(HttpAttrs {
            authority: "httpbin.org",
            method,
            path,
            headers: &headers,
        }),
    )
}

/// Whether a TCP connection from bookinfo's productpage to httpbin.org,
/// through the walkthrough's waypoint, is allowed by `snapshot`'s policies.
pub fn tcp_allowed(snapshot: &Snapshot) -> bool {
    allowed(snapshot, None)
}

/// What `snapshot`'s policies decide for the walkthrough's request.
fn allowed(snapshot: &Snapshot, http: Option<HttpAttrs<'_>>) -> bool {
    let attrs = RequestAttrs {
        source_principal: Some("cluster.local/ns/bookinfo/sa/bookinfo-productpage"),
        source_ip: "10.0.0.1".parse().unwrap(),
        remote_ip: "10.0.0.1".parse().unwrap(),
        destination: "240.240.0.2:80".parse().unwrap(),
        sni: None,
        http,
    };
    snapshot.authz.evaluate(&waypoint_target(), &attrs).allowed
}

/// The walkthrough's waypoint, serving ServiceEntry istio-egress/httpbin.org.
pub fn waypoint_target() -> TargetKey<'static> {
    TargetKey {
        gateway: GatewayKey {
            namespace: "istio-egress",
            name: "egress-waypoint",
            class: "istio-waypoint",
        },
        service_entry: Some(NamespacedName {
            namespace: "istio-egress",
            name: "httpbin.org",
        }),
        service: None,
    }
}

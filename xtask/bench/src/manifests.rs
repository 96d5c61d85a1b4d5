//! The manifests the bench applies: the walkthrough's Steps 1–2 and
//! ServiceEntries for the bench's own hosts (same shape as Step 3).

use egret_e2e::manifests::{BOOKINFO_NAMESPACE, GATEWAY};

/// Step 1 (bookinfo joins the mesh) and Step 2 (the egress waypoint).
pub fn mesh_base() -> String {
    format!(
        "{BOOKINFO_NAMESPACE}---\n\
         apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-egress\n  labels:\n    \
         istio.io/dataplane-mode: ambient\n    istio.io/use-waypoint: egress-waypoint\n---\n{GATEWAY}"
    )
}

/// A Step-3-shaped ServiceEntry bound to the waypoint: `host`, port 80
/// (HTTP) to `target_port`, DNS resolution; `address` pins its VIP.
pub fn service_entry(host: &str, target_port: u16, address: Option<&str>) -> String {
    let addresses = address.map_or(String::new(), |a| format!("  addresses:\n  - {a}\n"));
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {host}\n  \
         namespace: istio-egress\n  labels:\n    istio.io/use-waypoint: egress-waypoint\nspec:\n  \
         hosts:\n  - {host}\n{addresses}  ports:\n  - name: http\n    number: 80\n    protocol: HTTP\n    \
         targetPort: {target_port}\n  resolution: DNS\n"
    )
}

/// The walkthrough's Step 4a/4b for `hosts`: GET /get allowed, header added.
pub fn policy(hosts: &[&str]) -> Vec<(&'static str, String)> {
    let list = hosts.join("\", \"");
    let ap = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: bench\n  \
         namespace: istio-egress\nspec:\n  targetRefs:\n  - kind: Gateway\n    name: egress-waypoint\n    \
         group: gateway.networking.k8s.io\n  action: ALLOW\n  rules:\n  - to:\n    - operation:\n        \
         hosts: [\"{list}\"]\n        methods: [\"GET\"]\n        paths: [\"/get\"]\n"
    );
    let mut out = vec![("AuthorizationPolicy (GET /get only)", ap)];
    for host in hosts {
        out.push((
            "VirtualService (header add)",
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {host}\n  \
                 namespace: istio-egress\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n    - destination:\n        \
                 host: {host}\n      headers:\n        request:\n          add:\n            my-added-header: added-value\n"
            ),
        ));
    }
    out
}

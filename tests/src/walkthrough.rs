//! The walkthrough's steps as the suites share them.

use crate::manifests::{BOOKINFO_NAMESPACE, GATEWAY};
use crate::Node;

/// The walkthrough's app: `productpage-v1` of `bookinfo`.
pub const WORKLOAD_NS: &str = "bookinfo";
/// The service account it runs as.
pub const WORKLOAD_SA: &str = "bookinfo-productpage";

/// Steps 1–2, as the user runs them: the app's namespace joins the mesh,
/// `istio-egress` is created and labelled, the waypoint Gateway applied.
pub fn mesh_with_waypoint(node: &Node) -> anyhow::Result<()> {
    node.apply(BOOKINFO_NAMESPACE)?;
    node.egret_ok(&["create", "namespace", "istio-egress"])?;
    node.egret_ok(&[
        "label",
        "ns",
        "istio-egress",
        "istio.io/dataplane-mode=ambient",
    ])?;
    node.egret_ok(&[
        "label",
        "ns",
        "istio-egress",
        "istio.io/use-waypoint=egress-waypoint",
    ])?;
    node.apply(GATEWAY)?;
    Ok(())
}

/// `curl -sv -m 10 URL` as the walkthrough's workload: (stdout, stderr).
pub fn curl_sv(node: &Node, url: &str) -> anyhow::Result<(String, String)> {
    let out = node.exec(WORKLOAD_NS, WORKLOAD_SA, &["curl", "-sv", "-m", "10", url])?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `curl URL` as a workload of `namespace`/`service_account`: the HTTP
/// status code curl printed (`000` when there was no response).
pub fn status_code(
    node: &Node,
    namespace: &str,
    service_account: &str,
    url: &str,
) -> anyhow::Result<String> {
    let out = node.exec(
        namespace,
        service_account,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "10",
            url,
        ],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

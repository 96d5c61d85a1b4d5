//! HBONE between two "nodes" on one machine: a workload on the first node
//! (agent with eBPF capture) reaches httpbin through a standalone waypoint
//! (`egret waypoint`) in a second namespace, over mutual TLS with SPIFFE
//! identities. Real curl, real httpbin, real dnsmasq, real eBPF.

use std::time::Duration;

use egret_e2e::two_nodes::{
    node_with_remote_waypoint, remote_waypoint_mesh, WaypointNode, WAYPOINT_ADDR,
};
use egret_e2e::walkthrough::{status_code, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::Node;

const WORKLOAD_ID: &str = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage";
const WAYPOINT: &str = "istio-egress/egress-waypoint";

fn curl(node: &Node) -> anyhow::Result<(String, String, bool)> {
    let out = node.exec(
        WORKLOAD_NS,
        WORKLOAD_SA,
        &["curl", "-sv", "-m", "10", "httpbin.org/get"],
    )?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    ))
}

#[test]
fn workload_reaches_httpbin_through_a_remote_waypoint_over_hbone() -> anyhow::Result<()> {
    let node = node_with_remote_waypoint()?;
    let waypoint = WaypointNode::start(&node, &remote_waypoint_mesh(), WAYPOINT, &[])?;

    let (body, headers, ok) = curl(&node)?;
    assert!(
        ok,
        "curl failed: {headers}\nagent log:\n{}\nwaypoint log:\n{}",
        node.agent_log(),
        waypoint.log()
    );
    assert!(headers.contains("< HTTP/1.1 200 OK"), "{headers}");
    // Only the waypoint's L7 pipeline adds this: the request went through it.
    assert!(headers.contains("< server: istio-envoy"), "{headers}");
    let json: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(json["url"], "http://httpbin.org/get", "{body}");

    // The waypoint knows the workload by the certificate it presented.
    let wp_log = waypoint.log();
    let request_line = wp_log
        .lines()
        .find(|l| l.contains("request complete"))
        .unwrap_or_else(|| panic!("no request line at the waypoint:\n{wp_log}"));
    for field in [
        format!("src.identity=\"{WORKLOAD_ID}\""),
        "src.namespace=\"bookinfo\"".to_string(),
        "dst.hbone_addr=240.240.10.1:80".to_string(),
        "dst.service=\"httpbin.org\"".to_string(),
        "dst.identity=\"spiffe://cluster.local/ns/istio-egress/sa/egress-waypoint\"".to_string(),
        "response_code=200".to_string(),
    ] {
        assert!(
            request_line.contains(&field),
            "missing {field}: {request_line}"
        );
    }

    // The node only tunnelled: its line names the waypoint as destination.
    let agent_ok = node.wait_until(Duration::from_secs(5), || {
        node.agent_log().lines().any(|l| {
            l.contains("connection complete")
                && l.contains(&format!("dst.addr={WAYPOINT_ADDR}:15008"))
                && l.contains(&format!("src.identity=\"{WORKLOAD_ID}\""))
        })
    });
    assert!(
        agent_ok,
        "no tunnel line on the node:\n{}",
        node.agent_log()
    );
    assert!(
        !node.agent_log().contains("request complete"),
        "the node served L7 itself instead of tunnelling:\n{}",
        node.agent_log()
    );
    Ok(())
}

#[test]
fn a_waypoint_with_an_unexpected_identity_is_refused_by_the_client() -> anyhow::Result<()> {
    let node = node_with_remote_waypoint()?;
    // Same root, wrong name: it presents .../sa/impostor.
    let waypoint =
        WaypointNode::start(&node, &remote_waypoint_mesh(), "istio-egress/impostor", &[])?;
    let (_, headers, ok) = curl(&node)?;
    assert!(!ok, "curl reached httpbin through an impostor: {headers}");
    let refused = node.wait_until(Duration::from_secs(5), || {
        node.agent_log().contains(
            "are not the expected [spiffe://cluster.local/ns/istio-egress/sa/egress-waypoint]",
        )
    });
    assert!(
        refused,
        "no identity refusal on the node:\n{}\nwaypoint:\n{}",
        node.agent_log(),
        waypoint.log()
    );
    assert!(
        !waypoint.log().contains("request complete"),
        "{}",
        waypoint.log()
    );
    Ok(())
}

#[test]
fn a_waypoint_of_another_trust_domain_is_refused() -> anyhow::Result<()> {
    let node = node_with_remote_waypoint()?;
    // Same root, but the waypoint is of other.local and presents
    // spiffe://other.local/..., which the node does not accept. (A client of
    // another trust domain, refused by the server: agent/tests/hbone_mtls.rs.)
    let waypoint = WaypointNode::start(
        &node,
        &remote_waypoint_mesh(),
        WAYPOINT,
        &["--trust-domain", "other.local"],
    )?;
    let (_, headers, ok) = curl(&node)?;
    assert!(!ok, "curl got through a foreign trust domain: {headers}");
    assert!(
        !waypoint.log().contains("request complete"),
        "{}",
        waypoint.log()
    );
    let refused = node.wait_until(Duration::from_secs(5), || {
        node.agent_log()
            .contains("spiffe://other.local/ns/istio-egress/sa/egress-waypoint")
    });
    assert!(refused, "no refusal on the node:\n{}", node.agent_log());
    Ok(())
}

#[test]
fn source_principals_policy_at_the_remote_waypoint_allows_one_account_and_denies_another(
) -> anyhow::Result<()> {
    let node = node_with_remote_waypoint()?;
    let policy = r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: only-productpage
  namespace: istio-egress
spec:
  targetRefs:
  - kind: Gateway
    name: egress-waypoint
    group: gateway.networking.k8s.io
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]
"#;
    let waypoint = WaypointNode::start(
        &node,
        &format!("{}{policy}", remote_waypoint_mesh()),
        WAYPOINT,
        &[],
    )?;
    let as_account = |sa: &str| status_code(&node, WORKLOAD_NS, sa, "httpbin.org/get");
    assert_eq!(
        as_account(WORKLOAD_SA)?,
        "200",
        "waypoint log:\n{}",
        waypoint.log()
    );
    assert_eq!(
        as_account("bookinfo-reviews")?,
        "403",
        "waypoint log:\n{}",
        waypoint.log()
    );
    let log = waypoint.log();
    assert!(
        log.lines().any(|l| l.contains("response_code=403")
            && l.contains(
                "src.identity=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews\""
            )),
        "the waypoint did not deny the other account by its identity:\n{log}"
    );
    Ok(())
}

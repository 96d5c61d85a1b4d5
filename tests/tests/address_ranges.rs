//! ServiceEntry `spec.addresses` CIDRs: a workload's connect to any address
//! in the range is captured by the kernel (longest-prefix map) and served by
//! the waypoint; addresses outside it are left alone.

use std::time::{Duration, Instant};

use egret_e2e::node::EXTERNAL_ADDR;
use egret_e2e::walkthrough::{curl_sv as curl, mesh_with_waypoint};
use egret_e2e::{Node, NodeOptions};

/// The external host's /29, declared as the entry's addresses.
const RANGE_ENTRY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-range
  namespace: istio-egress
spec:
  hosts: [range.external.test]
  addresses: [192.0.2.8/29]
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: NONE
";

#[test]
fn connects_into_an_address_range_go_through_the_waypoint() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    let url = format!("http://{EXTERNAL_ADDR}/get");

    // Before the entry: straight to httpbin, no waypoint.
    let (body, trace) = curl(&node, &url)?;
    assert!(body.contains("\"url\""), "{body}\n{trace}");
    assert!(!trace.contains("istio-envoy"), "{trace}");

    node.apply(RANGE_ENTRY)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (body, trace) = curl(&node, &url)?;
        if trace.contains("< server: istio-envoy") && body.contains("\"url\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never went through the waypoint: {body}\n{trace}\nagent log:\n{}",
            node.agent_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ranges = |node: &Node| -> anyhow::Result<String> {
        Ok(node.status()?["kernel_service_ranges"].to_string())
    };
    assert!(
        ranges(&node)?.contains("\"192.0.2.8/29\""),
        "the range is not in the kernel map: {}",
        ranges(&node)?
    );
    let log = node.agent_log();
    assert!(
        log.lines().any(|l| l.contains("request complete")
            && l.contains("dst.service=\"range.external.test\"")
            && l.contains(&format!("dst.hbone_addr={EXTERNAL_ADDR}:80"))
            && l.contains("response_code=200")),
        "{log}"
    );

    // Removing the entry releases the range.
    node.egret_ok(&[
        "delete",
        "serviceentry",
        "external-range",
        "-n",
        "istio-egress",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (body, trace) = curl(&node, &url)?;
        if !trace.contains("istio-envoy") && body.contains("\"url\"") {
            break;
        }
        assert!(Instant::now() < deadline, "still captured: {trace}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing is left behind in the kernel.
    assert_eq!(ranges(&node)?, "[]");
    Ok(())
}

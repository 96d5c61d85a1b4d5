//! The admin endpoint of the real agent on a sealed test node, after the
//! walkthrough's Step 3 request and a Step 4a denied POST: Istio request
//! metrics with the access log's codes and flags, kernel verdicts, readiness.
//! Fetched with curl inside the node namespace, where the agent listens on
//! loopback.

use std::time::Duration;

use egret_e2e::manifests::{AUTHORIZATION_POLICY, BOOKINFO_NAMESPACE, GATEWAY, SERVICE_ENTRY};
use egret_e2e::{Node, NodeOptions};

const ADMIN: &str = "http://127.0.0.1:15000";

/// Steps 1–3: namespaces, waypoint, ServiceEntry.
fn walkthrough_through_step3(node: &Node) -> anyhow::Result<()> {
    node.apply(BOOKINFO_NAMESPACE)?;
    node.egret_ok(&["create", "namespace", "istio-egress"])?;
    for label in [
        "istio.io/dataplane-mode=ambient",
        "istio.io/use-waypoint=egress-waypoint",
    ] {
        node.egret_ok(&["label", "ns", "istio-egress", label])?;
    }
    node.apply(GATEWAY)?;
    node.apply(SERVICE_ENTRY)?;
    Ok(())
}

/// `(status, body)` of an admin page.
fn admin(node: &Node, path: &str) -> anyhow::Result<(u16, String)> {
    let out = node.on_node(
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("{ADMIN}{path}"),
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

/// The workload's `curl -sik`; returns the status line.
fn curl(node: &Node, url: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["curl", "-sik", "-m", "10"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = node.exec("bookinfo", "bookinfo-productpage", &args)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

fn generation(node: &Node) -> u64 {
    node.status()
        .map(|s| s["generation"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// The sum of the samples of `metric` carrying every label in `labels`
/// (`None` when there is none): series differ by workload, one per `egret exec`.
fn sample(page: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = page
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[test]
fn metrics_after_step3_and_a_denied_post() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    // "egret agent ready" is logged after the admin endpoint is marked ready.
    let (code, body) = admin(&node, "/healthz/ready")?;
    assert_eq!(code, 200, "{body}\n{}", node.agent_log());

    walkthrough_through_step3(&node)?;
    assert!(
        node.wait_until(Duration::from_secs(5), || admin(&node, "/config_dump")
            .map(|(_, b)| b.contains("\"host\": \"httpbin.org\""))
            .unwrap_or(false)),
        "the ServiceEntry never reached /config_dump:\n{}",
        admin(&node, "/config_dump")?.1
    );
    let (_, dump) = admin(&node, "/config_dump")?;
    let dump: serde_json::Value = serde_json::from_str(&dump)?;
    let service = dump["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["host"] == "httpbin.org"))
        .expect("httpbin.org in the dump")
        .clone();
    assert_eq!(service["waypoint_binding"], "bound", "{service}");
    assert_eq!(service["waypoint"], "istio-egress/egress-waypoint");
    assert!(
        service["vips"].as_array().is_some_and(|v| !v.is_empty()),
        "{service}"
    );

    // Step 3: the request through the waypoint.
    let ok = curl(&node, "httpbin.org/get", &[])?;
    assert_eq!(ok, "HTTP/1.1 200 OK", "{}", node.agent_log());
    // Step 4a: the policy, then a POST it denies.
    let g = generation(&node);
    node.apply(AUTHORIZATION_POLICY)?;
    node.wait_until(Duration::from_secs(5), || generation(&node) > g);
    let denied = curl(&node, "httpbin.org/post", &["-X", "POST"])?;
    assert_eq!(denied, "HTTP/1.1 403 Forbidden", "{}", node.agent_log());

    let log = node.agent_log();
    assert!(
        log.lines()
            .any(|l| l.contains("response_code=403") && l.contains("response_flags=RBAC")),
        "no RBAC access line:\n{log}"
    );
    // The connection lines (and counts) follow the workloads' closes.
    let tcp = [
        "reporter=\"waypoint\"",
        "destination_service=\"httpbin.org\"",
    ];
    node.wait_until(Duration::from_secs(5), || {
        admin(&node, "/metrics")
            .map(|(_, page)| sample(&page, "istio_tcp_connections_closed_total", &tcp) == Some(2.0))
            .unwrap_or(false)
    });
    let (code, page) = admin(&node, "/metrics")?;
    assert_eq!(code, 200, "{page}");
    let peers = [
        "reporter=\"waypoint\"",
        "source_workload_namespace=\"bookinfo\"",
        "source_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\"",
        "destination_service=\"httpbin.org\"",
        "destination_service_namespace=\"istio-egress\"",
        "request_protocol=\"http\"",
    ];
    let with = |more: &[&'static str]| -> Vec<&'static str> {
        peers.iter().copied().chain(more.iter().copied()).collect()
    };
    assert_eq!(
        sample(
            &page,
            "istio_requests_total",
            &with(&["response_code=\"200\"", "response_flags=\"-\""])
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "istio_requests_total",
            &with(&["response_code=\"403\"", "response_flags=\"RBAC\""])
        ),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "istio_tcp_connections_opened_total",
            &["reporter=\"waypoint\""]
        )
        .is_some_and(|n| n >= 2.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "egret_kernel_verdicts_total",
            &["verdict=\"redirect_service\""]
        )
        .is_some_and(|n| n > 0.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "egret_authz_decisions_total",
            &["reason=\"no_allow_matched\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert!(
        sample(&page, "egret_dns_queries_total", &["outcome=\"local\""]).is_some_and(|n| n > 0.0),
        "{page}"
    );
    assert!(
        sample(&page, "egret_config_generation", &[]).is_some_and(|n| n >= 1.0),
        "{page}"
    );
    let (code, _) = admin(&node, "/healthz/ready")?;
    assert_eq!(code, 200);
    Ok(())
}

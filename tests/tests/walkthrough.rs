//! The user's walkthrough, Steps 1–3, on a sealed test node: the same
//! manifests byte for byte, real curl, real httpbin, real dnsmasq, real eBPF.

use std::time::Duration;

use egret_e2e::manifests::{BOOKINFO_NAMESPACE, SERVICE_ENTRY};
use egret_e2e::walkthrough::{mesh_with_waypoint, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::{Node, NodeOptions};

fn curl(node: &Node, url: &str) -> anyhow::Result<(String, String, bool)> {
    let out = node.exec(WORKLOAD_NS, WORKLOAD_SA, &["curl", "-sv", "-m", "10", url])?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    ))
}

fn kernel_services(node: &Node) -> anyhow::Result<Vec<String>> {
    let status = node.status()?;
    Ok(status["kernel_services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

#[test]
fn step3_request_goes_through_the_waypoint_and_is_logged() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    assert!(
        node.wait_until(Duration::from_secs(5), || kernel_services(&node)
            .map(|s| s.iter().any(|e| e.starts_with("240.240.0.2 ")))
            .unwrap_or(false)),
        "the ServiceEntry's VIP never reached the kernel map; log:\n{}",
        node.agent_log()
    );

    let (body, headers, ok) = curl(&node, "httpbin.org/get")?;
    assert!(
        ok,
        "curl failed: {headers}\nagent log:\n{}",
        node.agent_log()
    );
    assert!(headers.contains("< HTTP/1.1 200 OK"), "{headers}");
    assert!(headers.contains("< server: istio-envoy"), "{headers}");
    let service_time = headers
        .lines()
        .find_map(|l| l.strip_prefix("< x-envoy-upstream-service-time: "))
        .unwrap_or_else(|| panic!("no x-envoy-upstream-service-time: {headers}"));
    service_time.trim().parse::<u64>()?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(json["url"], "http://httpbin.org/get", "{body}");

    let log = node.agent_log();
    let identity = "src.identity=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\"";
    let request_line = log
        .lines()
        .find(|l| l.contains("http access") && l.contains("request complete"))
        .unwrap_or_else(|| panic!("no request access line:\n{log}"));
    assert!(request_line.contains(identity), "{request_line}");
    for field in [
        "dst.hbone_addr=240.240.0.2:80",
        "dst.service=\"httpbin.org\"",
        "direction=\"outbound\"",
        "method=GET",
        "path=\"/get\"",
        "response_code=200",
    ] {
        assert!(
            request_line.contains(field),
            "missing {field}: {request_line}"
        );
    }
    assert!(
        node.wait_until(Duration::from_secs(5), || node
            .agent_log()
            .lines()
            .any(|l| l.contains("connection complete") && l.contains(identity))),
        "no connection access line:\n{}",
        node.agent_log()
    );

    // Step 3's status check.
    let yaml = node.egret_ok(&[
        "get",
        "serviceentry",
        "httpbin.org",
        "-n",
        "istio-egress",
        "-o",
        "yaml",
    ])?;
    for expected in [
        "host: httpbin.org",
        "value: 240.240.0.2",
        "value: 2001:2::2",
        "type: istio.io/WaypointBound",
        "reason: WaypointAccepted",
        "Successfully attached to waypoint istio-egress/egress-waypoint",
    ] {
        assert!(yaml.contains(expected), "missing `{expected}` in:\n{yaml}");
    }
    Ok(())
}

#[test]
fn deleting_the_service_entry_releases_capture_and_reapplying_restores_it() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    let (_, headers, ok) = curl(&node, "httpbin.org/get")?;
    assert!(ok && headers.contains("server: istio-envoy"), "{headers}");

    node.egret_ok(&[
        "delete",
        "serviceentry",
        "httpbin.org",
        "-n",
        "istio-egress",
    ])?;
    assert!(
        node.wait_until(Duration::from_secs(2), || kernel_services(&node)
            .map(|s| s.is_empty())
            .unwrap_or(false)),
        "kernel map still holds entries: {:?}",
        kernel_services(&node)?
    );
    let (body, headers, ok) = curl(&node, "httpbin.org/get")?;
    assert!(ok, "direct curl failed: {headers}");
    assert!(
        !headers.contains("istio-envoy"),
        "still through the waypoint: {headers}"
    );
    assert!(
        !headers.contains("x-envoy-upstream-service-time"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!(
            "Connected to httpbin.org ({})",
            egret_e2e::node::EXTERNAL_ADDR
        )),
        "{headers}"
    );
    let json: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(json["url"], "http://httpbin.org/get");

    // Re-applied after a delete, the host may get a fresh VIP (released
    // addresses are not reused at once).
    node.apply(SERVICE_ENTRY)?;
    assert!(
        node.wait_until(Duration::from_secs(1), || kernel_services(&node)
            .map(|s| s.iter().any(|e| e.starts_with("240.240.")))
            .unwrap_or(false)),
        "capture not restored within a second: {:?}\n{}",
        kernel_services(&node)?,
        node.agent_log()
    );
    let (_, headers, ok) = curl(&node, "httpbin.org/get")?;
    assert!(ok && headers.contains("server: istio-envoy"), "{headers}");
    Ok(())
}

#[test]
fn only_enrolled_workloads_are_captured() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;

    // A workload of a namespace without the ambient label resolves the real
    // address and is never captured.
    let out = node.exec(
        "default",
        "default",
        &["curl", "-sv", "-m", "10", "httpbin.org/get"],
    )?;
    let headers = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{headers}");
    assert!(
        !headers.contains("istio-envoy"),
        "unenrolled workload was captured: {headers}"
    );

    // A process on the node itself, not started by `egret exec`, that dials
    // the VIP is left alone: the node has no route there.
    let before = node.status()?["kernel_stats"].clone();
    let out = node.on_node("curl", &["-s", "-m", "3", "http://240.240.0.2/get"])?;
    assert!(
        !out.status.success(),
        "a node process reached the VIP: it was captured"
    );
    let after = node.status()?["kernel_stats"].clone();
    let redirects = |v: &serde_json::Value| {
        v.as_array()
            .and_then(|a| a.iter().find(|p| p[0] == "RedirectService"))
            .and_then(|p| p[1].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(
        redirects(&before),
        redirects(&after),
        "kernel redirected a node process"
    );

    // The namespace label is what enrolls: removing it stops capture for new
    // workloads of that namespace.
    node.apply(&BOOKINFO_NAMESPACE.replace("ambient", "none"))?;
    std::thread::sleep(Duration::from_millis(300));
    let out = node.exec(
        WORKLOAD_NS,
        WORKLOAD_SA,
        &["curl", "-sv", "-m", "10", "httpbin.org/get"],
    )?;
    let headers = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !headers.contains("istio-envoy"),
        "{headers}"
    );
    Ok(())
}

#[test]
fn exec_returns_the_command_status_and_leaves_nothing_behind() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    node.apply(BOOKINFO_NAMESPACE)?;
    let out = node.exec(WORKLOAD_NS, WORKLOAD_SA, &["sh", "-c", "exit 7"])?;
    assert_eq!(out.status.code(), Some(7));
    let status = node.status()?;
    assert_eq!(
        status["workloads"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    assert_eq!(
        status["kernel_enrolled"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    let out = node.exec(
        WORKLOAD_NS,
        WORKLOAD_SA,
        &[
            "sh",
            "-c",
            "cat /etc/resolv.conf; ip -4 addr show eth0; cat /proc/self/cgroup",
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nameserver 192.0.2.1"), "{text}");
    assert!(text.contains("inet 10.238."), "{text}");
    // The workload's cgroup and netns share a name; both are gone after exit.
    let cgroup = text
        .lines()
        .find_map(|l| l.strip_prefix("0::/egret/"))
        .unwrap_or_else(|| panic!("workload not in its own egret cgroup: {text}"));
    assert!(
        !std::path::Path::new("/run/netns").join(cgroup).exists(),
        "netns {cgroup} left behind"
    );
    let cgroup_dirs = ["/sys/fs/cgroup/unified/egret", "/sys/fs/cgroup/egret"];
    for dir in cgroup_dirs {
        assert!(
            !std::path::Path::new(dir).join(cgroup).exists(),
            "cgroup {cgroup} left behind"
        );
    }
    Ok(())
}

#[test]
fn bad_manifests_are_rejected_and_change_nothing() -> anyhow::Result<()> {
    let node = Node::start(NodeOptions::default())?;
    mesh_with_waypoint(&node)?;
    node.apply(SERVICE_ENTRY)?;
    let get = || {
        node.egret_ok(&[
            "get",
            "serviceentry",
            "httpbin.org",
            "-n",
            "istio-egress",
            "-o",
            "yaml",
        ])
    };
    assert!(
        node.wait_until(Duration::from_secs(5), || get()
            .map(|y| y.contains("WaypointAccepted"))
            .unwrap_or(false)),
        "status never written"
    );
    let before = get()?;
    let cases = [
        ("kind: [unclosed", "yaml"),
        (
            "apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n",
            "Frobnicator",
        ),
        (
            &SERVICE_ENTRY.replace("number: 80", "number: 70000") as &str,
            "spec.ports[0].number",
        ),
        (
            &SERVICE_ENTRY.replace(
                "  resolution: DNS",
                "  - name: http2\n    number: 80\n    protocol: HTTP\n  resolution: DNS",
            ) as &str,
            "duplicate",
        ),
    ];
    for (yaml, needle) in cases {
        let out = node.egret_stdin(&["apply", "-f", "-"], Some(yaml))?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted bad manifest:\n{yaml}");
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "error `{err}` does not mention `{needle}`"
        );
    }
    let after = get()?;
    assert_eq!(before, after);
    let (_, headers, ok) = curl(&node, "httpbin.org/get")?;
    assert!(ok && headers.contains("server: istio-envoy"), "{headers}");
    Ok(())
}

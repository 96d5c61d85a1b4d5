//! End to end: SIGTERM drains. The node agent (`egret run`) and the
//! standalone waypoint (`egret waypoint`) stop accepting at once, let a
//! request in flight finish with its whole response (`connection: close`),
//! exit as soon as nothing is open, and close what is still open at
//! `--drain-timeout`. The kernel keeps enforcing throughout (the agent's
//! take-over rules: tests/tests/enforcement.rs). Real agent, real eBPF,
//! real curl/httpbin, in sealed namespaces.

use std::time::{Duration, Instant};

use egret_e2e::manifests::SERVICE_ENTRY;
use egret_e2e::process::Background;
use egret_e2e::two_nodes::{
    node_with_remote_waypoint, remote_waypoint_mesh, WaypointNode, WAYPOINT_ADDR,
};
use egret_e2e::walkthrough::{mesh_with_waypoint, WORKLOAD_NS, WORKLOAD_SA};
use egret_e2e::workload::LongWorkload;
use egret_e2e::{Node, NodeOptions};

/// Time for a background curl to resolve, connect and send its request.
const REQUEST_SENT: Duration = Duration::from_millis(800);
/// Slack on an exit time: log flush, runtime teardown, scheduling.
const MARGIN: Duration = Duration::from_millis(2500);

/// A walkthrough node (waypoint on this node, httpbin.org through it) whose
/// agent runs with `extra` arguments.
fn node_with(extra: &[&str]) -> Node {
    let mut node = Node::start(NodeOptions {
        defer_agent: true,
        ..NodeOptions::default()
    })
    .expect("node");
    node.start_agent_with(extra).expect("agent");
    mesh_with_waypoint(&node).expect("steps 1-2");
    node.apply(SERVICE_ENTRY).expect("step 3");
    node
}

/// Starts `curl URL` in the background inside the workload; its headers,
/// body and exit code go to the returned file.
fn curl_in_background(w: &mut LongWorkload, url: &str) -> std::path::PathBuf {
    let out = w.path("slow.out");
    let script = format!(
        "(curl -s -D - -m 20 {url}; echo \"exit=$?\") > {out} 2>&1 < /dev/null &",
        out = out.display()
    );
    let ran = w.run(&script).unwrap();
    assert_eq!(ran.code, 0, "{ran:?}");
    out
}

/// What the background curl wrote, once it wrote its exit code.
fn curl_result(out: &std::path::Path, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.contains("exit=") || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `curl` to a fresh connection inside the workload: `<code> exit=<n>`.
fn quick_curl(w: &mut LongWorkload, url: &str) -> String {
    w.run(&format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -m 3 {url}; echo \" exit=$?\""
    ))
    .unwrap()
    .stdout
    .trim()
    .to_string()
}

/// SIGTERM to `process`; its exit status and how long it took.
fn terminate(process: &mut Background) -> impl FnMut() -> (bool, Duration) + '_ {
    process.terminate();
    let sent = Instant::now();
    move || {
        let status = process
            .wait_exit(Duration::from_secs(15))
            .expect("the process exits");
        (status.success(), sent.elapsed())
    }
}

/// The process exited cleanly once the `/delay/3` request that was in
/// flight at SIGTERM (about 2 s left) had its whole response, with
/// `connection: close`, and no later (the drain timeout is 5 s).
fn waited_for_the_request(
    exited: (bool, Duration),
    out: &std::path::Path,
    log: impl Fn() -> String,
) {
    let (clean, took) = exited;
    assert!(clean, "clean exit; log:\n{}", log());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM; log:\n{}",
        log()
    );
    let result = curl_result(out, Duration::from_secs(5));
    assert!(result.starts_with("HTTP/1.1 200 OK\r\n"), "{result}");
    assert!(
        result
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "the response says the connection ends: {result}"
    );
    assert!(
        result.contains("\"url\":\"http://httpbin.org/delay/3\""),
        "whole body: {result}"
    );
    assert!(result.trim_end().ends_with("exit=0"), "{result}");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_refuses_new_connections() {
    let mut node = node_with(&[]);
    let mut w = LongWorkload::start(&node, WORKLOAD_NS, WORKLOAD_SA, &[]).unwrap();
    let out = curl_in_background(&mut w, "http://httpbin.org/delay/3");
    std::thread::sleep(REQUEST_SENT);

    let mut agent = node.take_agent().expect("agent running");
    let mut exited = terminate(&mut agent);
    // Draining: the workload's listener is closed, so the kernel's redirect
    // of a new connection is refused (as when no agent runs).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        quick_curl(&mut w, "http://240.240.0.2/get"),
        "000 exit=7",
        "a new connection while draining is refused"
    );
    waited_for_the_request(exited(), &out, || node.agent_log());
    let log = node.agent_log();
    assert!(log.contains("drained: every connection finished"), "{log}");
}

#[test]
fn a_connection_still_busy_at_the_drain_timeout_is_closed_and_the_agent_exits() {
    let mut node = node_with(&["--drain-timeout", "1500ms"]);
    let mut w = LongWorkload::start(&node, WORKLOAD_NS, WORKLOAD_SA, &[]).unwrap();
    let out = curl_in_background(&mut w, "http://httpbin.org/delay/10");
    std::thread::sleep(REQUEST_SENT);

    let mut agent = node.take_agent().expect("agent running");
    let (clean, took) = terminate(&mut agent)();
    assert!(clean, "clean exit; log:\n{}", node.agent_log());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(1500) + MARGIN,
        "exited {took:?} after SIGTERM with --drain-timeout 1500ms; log:\n{}",
        node.agent_log()
    );
    // Closed with the agent: curl ends long before httpbin would answer.
    let result = curl_result(&out, Duration::from_secs(2));
    assert!(result.contains("exit="), "curl still waiting: {result:?}");
    assert!(!result.contains("200 OK"), "{result}");
    assert!(!result.trim_end().ends_with("exit=0"), "{result}");
    let log = node.agent_log();
    assert!(
        log.contains("drain timeout: closing the connections still open"),
        "{log}"
    );
}

#[test]
fn the_standalone_waypoint_drains_its_hbone_connections() {
    let node = node_with_remote_waypoint().expect("node");
    let mut waypoint = WaypointNode::start(
        &node,
        &remote_waypoint_mesh(),
        "istio-egress/egress-waypoint",
        &[],
    )
    .expect("waypoint");
    let mut w = LongWorkload::start(&node, WORKLOAD_NS, WORKLOAD_SA, &[]).unwrap();
    let out = curl_in_background(&mut w, "http://httpbin.org/delay/3");
    std::thread::sleep(REQUEST_SENT);

    let mut process = waypoint.take_process().expect("waypoint running");
    let mut exited = terminate(&mut process);
    // Draining: the HBONE listener is closed.
    std::thread::sleep(Duration::from_millis(300));
    let probe = node
        .on_node(
            "python3",
            &[
                "-c",
                &format!(
                    "import socket\ntry:\n socket.create_connection(('{WAYPOINT_ADDR}', 15008), 2); print('connected')\nexcept ConnectionRefusedError: print('refused')"
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "refused",
        "a new HBONE connection while draining; waypoint log:\n{}",
        waypoint.log()
    );
    waited_for_the_request(exited(), &out, || waypoint.log());
}

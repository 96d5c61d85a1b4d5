//! Case 6: the HBONE hop. The same workload requests through a waypoint the
//! node agent serves itself, and through a standalone `egret waypoint` on a
//! second node reached over HBONE (mutual TLS, HTTP/2 CONNECT): requests/s,
//! latency and CPU per request for 1 KiB, and a 64 MiB transfer's rate and
//! CPU per GiB, each pair taken in the same round.

use std::time::Duration;

use egret_e2e::node::EXTERNAL_ADDR;
use egret_e2e::two_nodes::{WaypointNode, WAYPOINT_ADDR};

use crate::mesh::MeshNode;
use crate::procfs;
use crate::report::Report;
use crate::stats::Summary;
use crate::upstream::{self, BULK, SIZES};
use crate::{wrk, Ctx};

const CASE: &str = "6 HBONE";
/// Served by the node agent's own waypoint.
const LOCAL: [&str; 2] = ["up1k.bench", "bulk.bench"];
/// Served by the standalone waypoint, over HBONE.
const TUNNELLED: [&str; 2] = ["tun1k.bench", "tunbulk.bench"];
/// Fixed VIPs of the tunnelled services: both sides must agree on them.
const TUNNEL_VIPS: [&str; 2] = ["240.240.20.1", "240.240.20.2"];
const REMOTE: &str = "remote-waypoint";

/// A ServiceEntry for `host` to `port`, bound to `waypoint`, VIP pinned when given.
fn service_entry(host: &str, port: u16, waypoint: &str, vip: Option<&str>) -> String {
    let addresses = vip.map_or(String::new(), |a| format!("  addresses:\n  - {a}\n"));
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {host}\n  \
         namespace: istio-egress\n  labels:\n    istio.io/use-waypoint: {waypoint}\nspec:\n  \
         hosts:\n  - {host}\n{addresses}  ports:\n  - name: http\n    number: 80\n    protocol: HTTP\n    \
         targetPort: {port}\n  resolution: DNS\n"
    )
}

/// The remote waypoint's Gateway (with its address) and its services.
fn remote_manifests() -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-egress\n  labels:\n    \
         istio.io/dataplane-mode: ambient\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
         metadata:\n  name: {REMOTE}\n  namespace: istio-egress\nspec:\n  gatewayClassName: istio-waypoint\n  \
         addresses:\n  - type: IPAddress\n    value: {WAYPOINT_ADDR}\n  listeners:\n  - name: mesh\n    \
         port: 15008\n    protocol: HBONE\n"
    );
    for ((host, vip), port) in TUNNELLED.iter().zip(TUNNEL_VIPS).zip([SIZES[0].1, BULK.1]) {
        out.push_str("---\n");
        out.push_str(&service_entry(host, port, REMOTE, Some(vip)));
    }
    out
}

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let hosts: Vec<&str> = LOCAL.iter().chain(&TUNNELLED).copied().collect();
    let mesh = MeshNode::start(ctx, "hbone", &hosts)?;
    let node = &mesh.node;
    for (host, port) in LOCAL.iter().zip([SIZES[0].1, BULK.1]) {
        node.apply(&service_entry(host, port, "egress-waypoint", None))?;
    }
    let remote = remote_manifests();
    node.apply(&remote)?;
    let waypoint = WaypointNode::start(node, &remote, &format!("istio-egress/{REMOTE}"), &[])?;
    let waypoint_pid = waypoint
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the standalone waypoint is not running"))?;
    let dir = ctx.logs.join("hbone");
    std::fs::create_dir_all(&dir)?;
    let _upstream = upstream::start(node, &dir)?;
    let script = wrk::write_script(&dir)?;
    // Wait until both paths answer (the waypoint learns its config, the
    // node its VIPs).
    for host in [LOCAL[0], TUNNELLED[0]] {
        wait_ok(node, &format!("http://{host}/get"))?;
    }

    let agent = mesh.agent.pid;
    let variants = [
        ("(a) local waypoint", 0),
        ("(b) HBONE to a standalone waypoint", 1),
    ];
    let urls = [
        format!("http://{}/get", LOCAL[0]),
        format!("http://{}/get", TUNNELLED[0]),
    ];
    let bulk = [
        format!("http://{}/get", LOCAL[1]),
        format!("http://{}/get", TUNNELLED[1]),
    ];
    let mut rps = [Vec::new(), Vec::new()];
    let mut p99 = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    let mut mbps = [Vec::new(), Vec::new()];
    let mut cpu_gib = [Vec::new(), Vec::new()];
    let cpu_of = |i: usize| {
        procfs::tree_cpu_secs(agent)
            + if i == 1 {
                procfs::tree_cpu_secs(waypoint_pid)
            } else {
                0.0
            }
    };
    for _ in 0..ctx.runs {
        for (_, i) in variants {
            let before = cpu_of(i);
            let v = wrk::run(node, &script, &urls[i], ctx.load_ms)?;
            let requests = v["requests"].as_f64().unwrap_or(f64::NAN);
            rps[i].push(requests / (v["duration_us"].as_f64().unwrap_or(f64::NAN) / 1e6));
            p99[i].push(v["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0);
            cpu[i].push((cpu_of(i) - before) / (requests / 1000.0));

            let before = cpu_of(i);
            let (bytes, secs) = download(node, &bulk[i])?;
            mbps[i].push(bytes / secs / 1e6);
            cpu_gib[i].push((cpu_of(i) - before) / (bytes / f64::from(1u32 << 30)));
        }
    }
    for (name, i) in variants {
        let subject = format!("{name} 1 KiB");
        report.add_noted(
            CASE,
            &subject,
            "requests/s",
            "/s",
            &rps[i],
            "wrk -t1 keep-alive",
        );
        report.add(CASE, &subject, "latency p99", "ms", &p99[i]);
        report.add_noted(
            CASE,
            &subject,
            "CPU per 1k requests",
            "s",
            &cpu[i],
            "agent (+ waypoint)",
        );
        let subject = format!("{name} {}", BULK.0);
        report.add_noted(
            CASE,
            &subject,
            "transfer rate",
            "MB/s",
            &mbps[i],
            "one curl download",
        );
        report.add_noted(
            CASE,
            &subject,
            "CPU per GiB",
            "s",
            &cpu_gib[i],
            "agent (+ waypoint)",
        );
    }
    report.add_summary(
        CASE,
        "(b) vs (a) 1 KiB",
        "requests/s ratio",
        "x",
        Summary::ratio(&rps[1], &rps[0]),
        "run-by-run",
    );
    report.add_summary(
        CASE,
        &format!("(b) vs (a) {}", BULK.0),
        "transfer rate ratio",
        "x",
        Summary::ratio(&mbps[1], &mbps[0]),
        "run-by-run",
    );
    report.notes.push(format!(
        "Case 6: the standalone waypoint runs in its own namespace behind the node ({WAYPOINT_ADDR}:15008); \
         HTTP/2 windows as ztunnel's (stream 4 MiB, connection 16 MiB, frame 1 MiB); upstream {EXTERNAL_ADDR}."
    ));
    drop(waypoint);
    Ok(())
}

/// One 64 MiB download as the workload: (bytes, seconds).
fn download(node: &egret_e2e::Node, url: &str) -> anyhow::Result<(f64, f64)> {
    let out = node.exec(
        "bookinfo",
        "bench-client",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "60",
            "-w",
            "%{size_download} %{time_total}",
            url,
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<f64>().unwrap_or(f64::NAN));
    let (bytes, secs) = (
        parts.next().unwrap_or(f64::NAN),
        parts.next().unwrap_or(f64::NAN),
    );
    anyhow::ensure!(
        out.status.success() && bytes as usize == BULK.2,
        "download of {url} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((bytes, secs))
}

/// Waits (up to 20 s) until `url` answers 200 to the workload.
fn wait_ok(node: &egret_e2e::Node, url: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let code = egret_e2e::walkthrough::status_code(node, "bookinfo", "bench-client", url)?;
        if code == "200" {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{url} never answered 200 (last {code})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

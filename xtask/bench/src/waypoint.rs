//! Case 3: the waypoint's HTTP cost next to nginx and haproxy doing the
//! same job, and the floor (straight to the upstream). wrk runs as a mesh
//! workload; each proxy gets one core; the upstream is nginx with fixed
//! 1 KiB / 64 KiB bodies. Also the agent's idle memory.

use std::time::Duration;

use egret_e2e::node::{EXTERNAL_ADDR, NODE_ADDR};

use crate::manifests::{policy, service_entry};
use crate::mesh::MeshNode;
use crate::procfs;
use crate::proxies::{start_haproxy, start_nginx, PROXY_CPU};
use crate::report::Report;
use crate::stats::Summary;
use crate::upstream::{self, SIZES};
use crate::{wrk, Ctx};

const CASE: &str = "3 waypoint HTTP";
const HOSTS: [&str; 2] = ["up1k.bench", "up64k.bench"];
const VARIANTS: [&str; 4] = ["(a) direct", "(b) egret", "(c) nginx", "(d) haproxy"];

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let mesh = MeshNode::start(ctx, "waypoint", &HOSTS)?;
    let node = &mesh.node;
    for (host, (_, port, _)) in HOSTS.iter().zip(SIZES) {
        node.apply(&service_entry(host, port, None))?;
    }
    // Steps 4a/4b, for whatever the agent accepts today.
    let mut features = vec!["L7 HTTP/1.1 proxy, Envoy response headers, access log".to_string()];
    for (what, yaml) in policy(&HOSTS) {
        match node.apply(&yaml) {
            Ok(_) => features.push(format!("{what}: applied")),
            Err(e) => features.push(format!(
                "{what}: rejected by the agent ({})",
                first_line(&e.to_string())
            )),
        }
    }
    features.dedup();
    std::thread::sleep(Duration::from_secs(1));
    let idle = mesh.agent.rss_mib();
    report.add_noted(
        CASE,
        "egret agent, idle",
        "RSS",
        "MiB",
        &[idle],
        "walkthrough config + 2 ServiceEntries, no workload",
    );
    report.target(
        "idle agent RSS",
        "<= 20 MB",
        format!("{idle:.1} MiB"),
        idle <= 20.0,
    );

    let dir = ctx.logs.join("waypoint");
    std::fs::create_dir_all(&dir)?;
    let _upstream = upstream::start(node, &dir)?;
    let nginx = start_nginx(node, &dir)?;
    let haproxy = start_haproxy(node, &dir)?;
    // The agent gets the same single core as the other proxies.
    egret_e2e::process::must(
        "taskset",
        &["-a", "-p", "-c", PROXY_CPU, &mesh.agent.pid.to_string()],
    )?;
    let script = wrk::write_script(&dir)?;
    let pids = [
        None,
        Some(mesh.agent.pid),
        Some(nginx.pid),
        Some(haproxy.pid),
    ];

    for ((size, port, _), host) in SIZES.into_iter().zip(HOSTS) {
        let urls = [
            format!("http://{EXTERNAL_ADDR}:{port}/get"),
            format!("http://{host}/get"),
            format!("http://{NODE_ADDR}:{}/get", port + nginx.port_offset),
            format!("http://{NODE_ADDR}:{}/get", port + haproxy.port_offset),
        ];
        let mut rps = vec![Vec::new(); 4];
        let mut lat = vec![[Vec::new(), Vec::new(), Vec::new()]; 4];
        let mut cpu = vec![Vec::new(); 4];
        // Rounds interleave the variants: drift on a shared machine hits all.
        for _ in 0..ctx.runs {
            for i in 0..4 {
                let before = pids[i].map(procfs::tree_cpu_secs);
                let v = wrk::run(node, &script, &urls[i], ctx.load_ms)?;
                let requests = v["requests"].as_f64().unwrap_or(f64::NAN);
                rps[i].push(requests / (v["duration_us"].as_f64().unwrap_or(f64::NAN) / 1e6));
                for (k, field) in ["p50_us", "p99_us", "p999_us"].iter().enumerate() {
                    lat[i][k].push(v[field].as_f64().unwrap_or(f64::NAN) / 1000.0);
                }
                if let (Some(pid), Some(b)) = (pids[i], before) {
                    cpu[i].push((procfs::tree_cpu_secs(pid) - b) / (requests / 1000.0));
                }
            }
        }
        for i in 0..4 {
            let subject = format!("{} {size}", VARIANTS[i]);
            let note = format!("wrk -t1 -c{} keep-alive", wrk::CONNECTIONS);
            report.add_noted(CASE, &subject, "requests/s", "/s", &rps[i], &note);
            for (k, p) in ["p50", "p99", "p99.9"].iter().enumerate() {
                report.add(CASE, &subject, &format!("latency {p}"), "ms", &lat[i][k]);
            }
            if let Some(pid) = pids[i] {
                report.add(CASE, &subject, "CPU per 1k requests", "s", &cpu[i]);
                report.add_noted(
                    CASE,
                    &subject,
                    "peak RSS",
                    "MiB",
                    &[procfs::tree_peak_rss_mib(pid)],
                    "since start (all runs so far)",
                );
            }
        }
        for i in 1..4 {
            report.add_summary(
                CASE,
                &format!("{} {size}", VARIANTS[i]),
                "requests/s vs (a)",
                "x",
                Summary::ratio(&rps[i], &rps[0]),
                "run-by-run",
            );
        }
        for i in 2..4 {
            report.add_summary(
                CASE,
                &format!("(b) egret vs {} {size}", VARIANTS[i]),
                "requests/s ratio",
                "x",
                Summary::ratio(&rps[1], &rps[i]),
                "run-by-run",
            );
        }
    }
    report.notes.push(format!("Case 3, egret features active: {}. nginx and haproxy: GET /get ACL + header add + access log.", features.join("; ")));
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

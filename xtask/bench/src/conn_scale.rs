//! Case 5: 10,000 idle client connections held through the waypoint; the
//! agent's memory, and the latency of fresh requests beside them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::manifests::service_entry;
use crate::mesh::MeshNode;
use crate::report::Report;
use crate::stats::Summary;
use crate::{upstream, Ctx};

const CASE: &str = "5 connection scale";
const HOST: &str = "up1k.bench";
const IDLE: usize = 10_000;

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let mesh = MeshNode::start(ctx, "conns", &[HOST])?;
    mesh.node
        .apply(&service_entry(HOST, upstream::SIZES[0].1, None))?;
    let dir = ctx.logs.join("conns");
    std::fs::create_dir_all(&dir)?;
    let _upstream = upstream::start(&mesh.node, &dir)?;
    std::thread::sleep(Duration::from_millis(500));
    let before = mesh.agent.rss_mib();
    let mut p50 = [Vec::new(), Vec::new()];
    let mut p99 = [Vec::new(), Vec::new()];
    let mut peak = Vec::new();
    let mut held = Vec::new();
    for _ in 0..ctx.runs {
        for (i, conns) in [0, IDLE].into_iter().enumerate() {
            let (v, rss) = hold(ctx, &mesh, conns)?;
            p50[i].push(v["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0);
            p99[i].push(v["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0);
            anyhow::ensure!(
                v["request_errors"].as_f64() == Some(0.0),
                "requests failed: {v}"
            );
            if conns > 0 {
                peak.push(rss);
                held.push(v["held"].as_f64().unwrap_or(0.0));
            }
        }
    }
    let note = format!("held (median): {}", Summary::of(&held).median);
    report.add_noted(
        CASE,
        "egret agent",
        "RSS before",
        "MiB",
        &[before],
        "1 ServiceEntry, upstream up",
    );
    report.add_noted(
        CASE,
        "egret agent",
        &format!("peak RSS with {IDLE} idle"),
        "MiB",
        &peak,
        &note,
    );
    for (i, label) in ["0 idle", "10k idle"].iter().enumerate() {
        report.add_noted(
            CASE,
            &format!("fresh GET, {label}"),
            "latency p50",
            "ms",
            &p50[i],
            "200 sequential requests, new connection each",
        );
        report.add(
            CASE,
            &format!("fresh GET, {label}"),
            "latency p99",
            "ms",
            &p99[i],
        );
    }
    report.add_summary(
        CASE,
        "fresh GET",
        "p50 10k idle vs 0 idle",
        "x",
        Summary::ratio(&p50[1], &p50[0]),
        "run-by-run",
    );
    Ok(())
}

/// One `hold` run as a bookinfo workload; samples the agent's RSS meanwhile.
fn hold(ctx: &Ctx, mesh: &MeshNode, conns: usize) -> anyhow::Result<(serde_json::Value, f64)> {
    let done = AtomicBool::new(false);
    let mut peak = 0f64;
    let out = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut max = 0f64;
            while !done.load(Ordering::Relaxed) {
                max = max.max(mesh.agent.rss_mib());
                std::thread::sleep(Duration::from_millis(50));
            }
            max
        });
        let load = ctx.built.load.to_string_lossy();
        let conns = conns.to_string();
        let args = [
            &*load,
            "hold",
            "--target",
            "up1k.bench:80",
            "--conns",
            &conns,
            "--requests",
            "200",
            "--hold-ms",
            "1000",
            "--duration-ms",
            "45000",
        ];
        let out = mesh.node.exec("bookinfo", "bench-idle", &args);
        done.store(true, Ordering::Relaxed);
        peak = sampler.join().unwrap_or(f64::NAN);
        out
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "hold failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    Ok((v, peak))
}

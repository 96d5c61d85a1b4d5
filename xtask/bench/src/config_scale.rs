//! Case 4: from a manifest change to the kernel map and the DNS proxy
//! using it, with 10 / 1,000 / 10,000 ServiceEntries present; agent memory
//! at each size.

use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use egret_e2e::node::in_netns;
use egret_load::clock;

use crate::agent_maps::AgentServices;
use crate::manifests::service_entry;
use crate::mesh::MeshNode;
use crate::report::Report;
use crate::Ctx;

const CASE: &str = "4 config scale";
const LEVELS: [usize; 3] = [10, 1_000, 10_000];

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let mesh = MeshNode::start(ctx, "config", &[])?;
    let services = AgentServices::open(mesh.agent.pid)?;
    let mut at_10k = f64::NAN;
    for (li, level) in LEVELS.into_iter().enumerate() {
        let bulk: String = (0..level)
            .map(|i| service_entry(&format!("bulk-{i}.bench"), 8001, None))
            .collect::<Vec<_>>()
            .join("---\n");
        let t = Instant::now();
        std::fs::write(mesh.node.config_dir().join("bench-bulk.yaml"), bulk)?;
        // Settled once every bulk entry is in the kernel: each host has a v4
        // and a v6 VIP (2 keys), and each earlier probe pinned one v4 (1 key).
        // (Counting `level` keys used to call it settled at half the load.)
        let keys = 2 * level + li * ctx.runs;
        let settled = wait(Duration::from_secs(120), || services.len() >= keys);
        anyhow::ensure!(
            settled,
            "{level} ServiceEntries ({keys} keys) did not reach SERVICES within 120 s (has {})",
            services.len()
        );
        let load_secs = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(500));
        let rss = mesh.agent.rss_mib();
        let mut map_ms = Vec::new();
        let mut dns_ms = Vec::new();
        for r in 0..ctx.runs {
            let addr = [240, 241, li as u8, r as u8 + 1];
            let host = format!("probe-{level}-{r}.bench");
            // A slow machine can fail one probe; report it and go on.
            let probed = probe(ctx, &mesh, &services, &host, addr);
            if let Some(m) = probed.map_ms {
                map_ms.push(m);
            }
            match probed.dns {
                Ok(d) => dns_ms.push(d),
                Err(e) => report
                    .problems
                    .push(format!("case {CASE}, {level} entries, probe {r}: {e:#}")),
            }
        }
        let note = format!("{level} ServiceEntries present");
        report.add_noted(
            CASE,
            &format!("{level} entries"),
            "apply -> kernel SERVICES",
            "ms",
            &map_ms,
            &note,
        );
        report.add_noted(
            CASE,
            &format!("{level} entries"),
            "apply -> DNS answer",
            "ms",
            &dns_ms,
            &note,
        );
        report.add_noted(
            CASE,
            &format!("{level} entries"),
            "agent RSS",
            "MiB",
            &[rss],
            &note,
        );
        report.add_noted(
            CASE,
            &format!("{level} entries"),
            "bulk file -> all in kernel",
            "s",
            &[load_secs],
            "one file of all entries",
        );
        if level == 10_000 && !map_ms.is_empty() && !dns_ms.is_empty() {
            at_10k = crate::stats::Summary::of(&map_ms)
                .median
                .max(crate::stats::Summary::of(&dns_ms).median);
        }
    }
    report.target(
        "config change -> kernel map + DNS at 10k ServiceEntries",
        "<= 100 ms",
        format!("{at_10k:.1} ms"),
        at_10k <= 100.0,
    );
    report.notes.push("Case 4: the levels count ServiceEntries only (AuthorizationPolicy levels: case 7). The probe ServiceEntry pins its VIP (spec.addresses) so the bench knows the kernel key to watch; the bulk ones are auto-allocated. Time starts just before `egret apply -f -` runs.".into());
    Ok(())
}

/// What one probe measured: the time to the kernel map (if it got there)
/// and to the DNS answer (or why there was none).
struct Probed {
    map_ms: Option<f64>,
    dns: anyhow::Result<f64>,
}

/// One probe: a workload queries `host` in a loop; the bench applies its
/// ServiceEntry and watches SERVICES.
fn probe(
    ctx: &Ctx,
    mesh: &MeshNode,
    services: &AgentServices,
    host: &str,
    addr: [u8; 4],
) -> Probed {
    let mut map_ms = None;
    let dns = probe_inner(ctx, mesh, services, host, addr, &mut map_ms);
    Probed { map_ms, dns }
}

fn probe_inner(
    ctx: &Ctx,
    mesh: &MeshNode,
    services: &AgentServices,
    host: &str,
    addr: [u8; 4],
    map_ms: &mut Option<f64>,
) -> anyhow::Result<f64> {
    let node = &mesh.node;
    let mut cmd = in_netns(&node.node_ns, &ctx.built.egret.to_string_lossy());
    cmd.arg("--config-dir").arg(node.config_dir()).args([
        "exec",
        "-n",
        "bookinfo",
        "--service-account",
        "bench-dns",
        "--",
    ]);
    cmd.arg(&ctx.built.load)
        .args(["dns-wait", "--name", host, "--timeout-ms", "20000"]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // The change is made once the workload is querying (it says so on its
    // first line), however long a busy machine takes to start it.
    let lines = read_lines(child.stdout.take());
    let querying = lines.recv_timeout(Duration::from_secs(20)).is_ok();
    if !querying {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("the DNS probe for {host} did not start within 20 s");
    }
    std::thread::sleep(Duration::from_millis(50));
    let vip = addr.map(|b| b.to_string()).join(".");
    let t0 = clock::mono_ns();
    let applied = node.apply(&service_entry(host, 8001, Some(&vip)));
    let in_map = wait(Duration::from_secs(20), || services.has(addr));
    let t_map = clock::mono_ns();
    let deadline = Instant::now() + Duration::from_secs(25);
    while child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let status = child.wait()?;
    // The reader ends when the pipe closes; bounded in case a grandchild keeps it.
    let mut out = String::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        out = line;
    }
    applied?;
    anyhow::ensure!(in_map, "{host} ({vip}) never reached SERVICES");
    *map_ms = Some((t_map - t0) as f64 / 1e6);
    anyhow::ensure!(status.success(), "dns-wait for {host} failed: {out}");
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let started = v["started_mono_ns"].as_u64().unwrap_or(u64::MAX);
    anyhow::ensure!(
        started < t0,
        "the DNS probe started after the change; timing invalid"
    );
    let answered = v["answered_mono_ns"].as_u64().unwrap_or(0);
    Ok(answered.saturating_sub(t0) as f64 / 1e6)
}

/// Polls `check` every 1 ms until true or `limit` passes.
fn wait(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The lines `out` prints, as they come.
fn read_lines(out: Option<std::process::ChildStdout>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = out {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

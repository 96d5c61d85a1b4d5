//! Case 7: the waypoint with 0 / 1,000 / 10,000 AuthorizationPolicy rules
//! in force next to the walkthrough's policy. Every request is allowed, so
//! every added rule is evaluated and none matches: half are DENY rules on
//! paths the load never asks for, half ALLOW rules for other hosts. The
//! decision cost per request is the extra CPU per request over level 0.

use std::time::Duration;

use crate::manifests::{policy, service_entry};
use crate::mesh::MeshNode;
use crate::procfs;
use crate::proxies::PROXY_CPU;
use crate::report::Report;
use crate::stats::Summary;
use crate::upstream::{self, SIZES};
use crate::{wrk, Ctx};

const CASE: &str = "7 policy scale";
const HOST: &str = "up1k.bench";
const LEVELS: [usize; 3] = [0, 1_000, 10_000];
/// Rules per generated AuthorizationPolicy object.
const RULES_PER_POLICY: usize = 10;

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let mesh = MeshNode::start(ctx, "policy", &[HOST])?;
    let node = &mesh.node;
    let (_, port, _) = SIZES[0];
    node.apply(&service_entry(HOST, port, None))?;
    for (_, yaml) in policy(&[HOST]) {
        node.apply(&yaml)?;
    }
    let dir = ctx.logs.join("policy");
    std::fs::create_dir_all(&dir)?;
    let _upstream = upstream::start(node, &dir)?;
    egret_e2e::process::must(
        "taskset",
        &["-a", "-p", "-c", PROXY_CPU, &mesh.agent.pid.to_string()],
    )?;
    let script = wrk::write_script(&dir)?;
    let url = format!("http://{HOST}/get");
    let mut cpu_at_0 = Vec::new();
    for level in LEVELS {
        if level > 0 {
            node.apply(&generated(level))?;
            // The last DENY rule is in force: its path is refused.
            let code = egret_e2e::walkthrough::status_code(
                node,
                "bookinfo",
                "bench-client",
                &format!("http://{HOST}/blocked-{}", level / 2 - 1),
            )?;
            anyhow::ensure!(code == "403", "the {level}-rule policy set is not in force (status {code} for the last DENY path)");
        }
        std::thread::sleep(Duration::from_millis(500));
        let rss = mesh.agent.rss_mib();
        let (mut rps, mut p50, mut p99, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ctx.runs {
            let before = procfs::tree_cpu_secs(mesh.agent.pid);
            let v = wrk::run(node, &script, &url, ctx.load_ms)?;
            let requests = v["requests"].as_f64().unwrap_or(f64::NAN);
            rps.push(requests / (v["duration_us"].as_f64().unwrap_or(f64::NAN) / 1e6));
            p50.push(v["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0);
            p99.push(v["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0);
            cpu.push((procfs::tree_cpu_secs(mesh.agent.pid) - before) / (requests / 1000.0));
        }
        let subject = format!("{level} rules");
        let note = format!(
            "1 KiB GET, wrk -t1 -c{} keep-alive, agent on one core",
            wrk::CONNECTIONS
        );
        report.add_noted(CASE, &subject, "requests/s", "/s", &rps, &note);
        report.add(CASE, &subject, "latency p50", "ms", &p50);
        report.add(CASE, &subject, "latency p99", "ms", &p99);
        report.add(CASE, &subject, "CPU per 1k requests", "s", &cpu);
        report.add_noted(CASE, &subject, "agent RSS", "MiB", &[rss], "after the load");
        if level == 0 {
            cpu_at_0 = cpu;
        } else {
            // CPU-s per 1k requests minus level 0's, in µs per request.
            let extra: Vec<f64> = cpu
                .iter()
                .zip(&cpu_at_0)
                .map(|(c, c0)| (c - c0) * 1000.0)
                .collect();
            report.add_noted(
                CASE,
                &subject,
                "decision cost vs 0 rules",
                "µs/request",
                &extra,
                "extra agent CPU per request, run by run",
            );
            let base = Summary::of(&cpu_at_0).median;
            report.add_summary(
                CASE,
                &subject,
                "CPU per request vs 0 rules",
                "x",
                Summary::ratio(&cpu, &vec![base; cpu.len()]),
                "against the median of level 0",
            );
        }
    }
    report.notes.push(format!(
        "Case 7: each level adds AuthorizationPolicies of {RULES_PER_POLICY} rules each to the walkthrough's ALLOW: half DENY on /blocked-N paths, half ALLOW for other-N.bench hosts; none matches the load, so all are evaluated on every request."
    ));
    Ok(())
}

/// `rules` rules as AuthorizationPolicies bound to the waypoint, replacing
/// the previous level's (same names where they overlap).
fn generated(rules: usize) -> String {
    let policies = rules / RULES_PER_POLICY;
    (0..policies)
        .map(|p| {
            let deny = p < policies / 2;
            let rule = |i: usize| {
                let n = p * RULES_PER_POLICY + i;
                if deny {
                    format!("  - to:\n    - operation:\n        paths: [\"/blocked-{n}\"]\n")
                } else {
                    format!("  - to:\n    - operation:\n        hosts: [\"other-{n}.bench\"]\n        methods: [\"GET\"]\n")
                }
            };
            format!(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: scale-{p}\n  \
                 namespace: istio-egress\nspec:\n  targetRefs:\n  - kind: Gateway\n    name: egress-waypoint\n    \
                 group: gateway.networking.k8s.io\n  action: {}\n  rules:\n{}",
                if deny { "DENY" } else { "ALLOW" },
                (0..RULES_PER_POLICY).map(rule).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

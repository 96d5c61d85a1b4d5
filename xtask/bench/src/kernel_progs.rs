//! Case 1: nanoseconds per run of each egret kernel program (the kernel's
//! own run-time statistics), with 10 / 10,000 / 100,000 entries in
//! SERVICES and ENROLLED, while captured connects and DNS sends are driven.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bpf::{own_program_ids, prog_stats, BenchKernel, StatsOn, ENROLLED_MAX};
use crate::capture_ns::{CaptureNs, DNS_ADDR, VIP, VIP_PORT};
use crate::load;
use crate::report::Report;
use crate::Ctx;

const CASE: &str = "1 kernel programs";
const LEVELS: [usize; 3] = [10, 10_000, 100_000];

/// Runs the case.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let cap = CaptureNs::new(
        "k",
        &ctx.built.load,
        &ctx.logs,
        600_000,
        false,
        Some(&crate::bpf::orig_dst_pin()),
    )?;
    let kernel = BenchKernel::load(&ctx.built.bpf_object)?;
    let cookie = kernel.enroll(&cap.ns.path())?;
    let ids = own_program_ids();
    let _stats = StatsOn::enable()?;
    let half = (ctx.load_ms / 2).to_string();
    for level in LEVELS {
        let enrolled = level.min(ENROLLED_MAX);
        kernel.fill(&[VIP], level - 1, &[cookie], enrolled)?;
        let mut per_prog: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for _ in 0..ctx.runs {
            let before = prog_stats(&ids)?;
            let limit = Duration::from_millis(ctx.load_ms + 10_000);
            let connects = load::json(
                load::in_ns(
                    &cap.ns.name,
                    &ctx.built.load,
                    &["connect", "--addr", VIP_PORT, "--duration-ms", &half],
                ),
                limit,
            )?;
            let udp = load::json(
                load::in_ns(
                    &cap.ns.name,
                    &ctx.built.load,
                    &["udp", "--addr", DNS_ADDR, "--duration-ms", &half],
                ),
                limit,
            )?;
            anyhow::ensure!(
                load::num(&connects, "connections") > 0.0 && load::num(&udp, "answered") > 0.0,
                "the driven traffic was not captured: connects {connects}, udp {udp}"
            );
            let after = prog_stats(&ids)?;
            for (name, a) in &after {
                let b = before.get(name).copied().unwrap_or_default();
                let runs = a.run_cnt - b.run_cnt;
                if runs > 0.0 {
                    per_prog
                        .entry(name.clone())
                        .or_default()
                        .push((a.run_time_ns - b.run_time_ns) / runs);
                }
            }
        }
        for (name, samples) in per_prog {
            report.add_noted(
                CASE,
                &format!("{name} @ {level} entries"),
                "time per run",
                "ns",
                &samples,
                &format!("SERVICES {level}, ENROLLED {enrolled}"),
            );
        }
    }
    report.notes.push(format!(
        "Case 1: ENROLLED holds at most {ENROLLED_MAX} entries (its max_entries), so the 100,000 level has {ENROLLED_MAX} enrolled namespaces. \
         Stats come from BPF_ENABLE_STATS (same switch as kernel.bpf_stats_enabled=1) and bpftool run_time_ns/run_cnt of the bench's own copy \
         of the programs; they also count runs for any other process on the machine (non-enrolled: early exit). IPv6 programs are not driven."
    ));
    Ok(())
}

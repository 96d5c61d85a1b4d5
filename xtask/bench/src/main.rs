//! `cargo xtask bench`: egret next to the classic tools, measured in one
//! run on this machine. Every case builds its own sealed network namespaces
//! (nothing is sent off the machine), bounds every load loop in count and
//! time, and tears down what it started, also on error. Results go to
//! `target/bench/results.md` and `results.json`.

mod agent;
mod agent_maps;
mod bpf;
mod capture;
mod capture_ns;
mod config_scale;
mod conn_scale;
mod hbone;
mod kernel_progs;
mod load;
mod manifests;
mod mesh;
mod netns;
mod plot;
mod policy_scale;
mod procfs;
mod proxies;
mod quiet;
mod report;
mod stats;
mod tools;
mod upstream;
mod waypoint;
mod wrk;

use std::path::PathBuf;
use std::time::Instant;

use report::Report;
use xtask::prereq::require_root;

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cargo xtask bench",
    bin_name = "cargo xtask bench",
    about = "Run the benchmarks (egret next to iptables, nginx, haproxy)"
)]
pub struct Args {
    /// The quick set (the default): 3 runs of 2 s per figure.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The full set: 5 runs of 10 s per figure.
    #[arg(long)]
    full: bool,
    /// Only these cases (repeatable): kernel, capture, waypoint, config, conns, hbone, policy.
    #[arg(long = "case", value_name = "NAME")]
    cases: Vec<String>,
}

/// What every case needs.
pub struct Ctx {
    pub built: tools::Built,
    /// Runs per figure.
    pub runs: usize,
    /// Load duration of one run.
    pub load_ms: u64,
    /// Quick or full.
    pub full: bool,
    /// Logs of the servers and agents the cases start.
    pub logs: PathBuf,
}

/// A case: its name and its body.
type Case = (&'static str, fn(&Ctx, &mut Report) -> anyhow::Result<()>);

const CASES: &[Case] = &[
    ("kernel", kernel_progs::run),
    ("capture", capture::run),
    ("waypoint", waypoint::run),
    ("config", config_scale::run),
    ("conns", conn_scale::run),
    ("hbone", hbone::run),
    ("policy", policy_scale::run),
];

fn main() -> anyhow::Result<()> {
    run(clap::Parser::parse())
}

/// Runs the benchmarks.
fn run(args: Args) -> anyhow::Result<()> {
    require_root("the bench")?;
    for name in &args.cases {
        anyhow::ensure!(
            CASES.iter().any(|(n, _)| n == name),
            "unknown case `{name}`; cases: {}",
            CASES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        );
    }
    let built = tools::prepare()?;
    tools::raise_nofile()?;
    let out = tools::target_dir().join("bench");
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let ctx = Ctx {
        built,
        runs: if args.full { 5 } else { 3 },
        load_ms: if args.full { 10_000 } else { 2_000 },
        full: args.full,
        logs,
    };
    let mut report = Report {
        mode: format!(
            "{}: {} runs x {} s per figure",
            if ctx.full { "full" } else { "quick" },
            ctx.runs,
            ctx.load_ms / 1000
        ),
        machine: tools::machine(),
        ..Report::default()
    };
    let started = Instant::now();
    for (name, case) in CASES {
        if !args.cases.is_empty() && !args.cases.iter().any(|c| c == name) {
            continue;
        }
        eprintln!("bench: case {name}");
        let before = quiet::watch();
        if let Some(warning) = before.warning(name) {
            eprintln!("bench: WARNING: {warning}");
            report.warnings.push(warning);
        }
        let t = Instant::now();
        // A failed case is reported, not hidden, and the others still run.
        if let Err(e) = case(&ctx, &mut report) {
            eprintln!("bench: case {name} failed: {e:#}");
            report.problems.push(format!("case {name} failed: {e:#}"));
        }
        eprintln!("bench: case {name} took {:.0} s", t.elapsed().as_secs_f64());
        // Keep what we have even if a later case hangs the machine.
        report.write(&out)?;
    }
    report.notes.push(format!(
        "Total bench time: {:.0} s.",
        started.elapsed().as_secs_f64()
    ));
    report.write(&out)?;
    match plot::write_all(&report, &out.join("plots")) {
        Ok(plots) => eprintln!(
            "bench: {} charts in {}",
            plots.len(),
            out.join("plots").display()
        ),
        Err(e) => report.problems.push(format!("charts not written: {e:#}")),
    }
    println!("{}", report.markdown());
    println!("written: {0}/results.md, {0}/results.json", out.display());
    if report.problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} case(s) failed; see above", report.problems.len())
    }
}

//! What the bench needs on the machine: Debian packages, the release build
//! of egret and its kernel programs, the load tools, and enough descriptors.

use std::path::PathBuf;
use std::process::Command;

use anyhow::bail;

use xtask::prereq::{cargo, ensure_packages, workspace_root, PACKAGES};

/// Packages the cases use on top of the e2e harness's own.
const BENCH_PACKAGES: &[&str] = &[
    "wrk",
    "nginx-light",
    "haproxy",
    "iptables",
    "bpftool",
    "procps",
];

/// Programs that must be on PATH once the packages are installed.
const BENCH_TOOLS: &[&str] = &[
    "wrk", "nginx", "haproxy", "iptables", "bpftool", "taskset", "sysctl", "nsenter", "ip",
];

/// Paths of what the bench runs.
pub struct Built {
    /// `target/release/egret`.
    pub egret: PathBuf,
    /// The eBPF object `cargo xtask build-ebpf` wrote.
    pub bpf_object: PathBuf,
    /// `target/release/egret-load`, the load tools.
    pub load: PathBuf,
}

/// Installs packages, checks the tools, builds everything in release.
pub fn prepare() -> anyhow::Result<Built> {
    let mut all: Vec<&str> = PACKAGES.to_vec();
    all.extend_from_slice(BENCH_PACKAGES);
    ensure_packages(&all)?;
    let missing: Vec<&str> = BENCH_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the bench needs {} but they are not on PATH even after installing {}; install them and retry",
            missing.join(", "),
            BENCH_PACKAGES.join(" ")
        );
    }
    let bpf_object = xtask::build_ebpf::run()?;
    cargo(&["build", "--release", "-p", "egret"], &[])?;
    cargo(&["build", "--release", "-p", "egret-load"], &[])?;
    let release = target_dir().join("release");
    Ok(Built {
        egret: release.join("egret"),
        bpf_object,
        load: release.join("egret-load"),
    })
}

/// Cargo's target folder (`$CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Whether `program` is an executable on PATH (or under /usr/sbin, /sbin).
pub fn on_path(program: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|dir| std::path::Path::new(dir).join(program).is_file());
    found
}

/// Raises this process's descriptor limit to its hard maximum; the agent,
/// the workloads and the load tools started from here inherit it.
pub fn raise_nofile() -> anyhow::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            bail!("setrlimit(NOFILE): {}", std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// One line describing the machine (CPU, cores, memory, kernel, OS).
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = output("uname", &["-r"]);
    let os = std::fs::read_to_string("/etc/debian_version")
        .map(|v| format!("Debian {}", v.trim()))
        .unwrap_or_else(|_| "unknown OS".into());
    format!("{model}, {cores} cores, {mem_gib:.1} GiB RAM, Linux {kernel}, {os}")
}

/// A command's trimmed stdout, or "" when it fails.
pub fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

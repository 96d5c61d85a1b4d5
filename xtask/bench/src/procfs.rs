//! What /proc says about the processes under test: pid, memory, CPU time.

use std::path::Path;

/// The first process whose NUL-separated command line satisfies `pred`.
pub fn find_pid(pred: impl Fn(&[&str]) -> bool) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&raw);
        let args: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
        if pred(&args) {
            return Some(pid);
        }
    }
    None
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
fn status_kb(pid: u32, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches(" kB")
                .parse()
                .ok()
        })
}

/// Resident memory now, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_kb(pid, "VmRSS").map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Peak resident memory since the process started, MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_kb(pid, "VmHWM").map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Sum of peak RSS over `pid` and its children, MiB.
pub fn tree_peak_rss_mib(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .map(peak_rss_mib)
        .filter(|v| v.is_finite())
        .sum()
}

/// User + system CPU seconds of `pid` and its live children.
pub fn tree_cpu_secs(pid: u32) -> f64 {
    tree(pid).into_iter().map(cpu_secs).sum()
}

fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// `pid` and its direct children.
fn tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if parent(&entry.path()) == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

fn parent(proc_dir: &Path) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

//! Was the machine quiet? Before each case the bench watches the CPUs for a
//! moment: busy time, load average, and which processes used the CPU. A
//! figure taken on a busy machine is reported with a warning next to it,
//! never silently.

use std::collections::HashMap;
use std::time::Duration;

/// How long the machine is watched before a case.
pub const WINDOW: Duration = Duration::from_millis(1500);
/// Busy share of all CPUs above which the machine is not quiet.
const BUSY_LIMIT: f64 = 0.10;

/// What the machine did while nothing of the bench ran.
#[derive(Clone, Debug)]
pub struct Reading {
    /// Share of all CPU time that was busy, 0..1.
    pub busy: f64,
    /// 1-minute load average.
    pub load1: f64,
    /// The processes that used the most CPU time, with their share of one CPU.
    pub top: Vec<(String, f64)>,
}

impl Reading {
    /// A warning when the machine was not quiet.
    pub fn warning(&self, case: &str) -> Option<String> {
        if self.busy <= BUSY_LIMIT {
            return None;
        }
        let top: Vec<String> = self
            .top
            .iter()
            .map(|(name, share)| format!("{name} {:.0}%", share * 100.0))
            .collect();
        Some(format!(
            "machine not quiet before case {case}: CPUs {:.0}% busy, load average {:.2}; busiest: {}",
            self.busy * 100.0,
            self.load1,
            top.join(", ")
        ))
    }
}

/// Watches the machine for [`WINDOW`].
pub fn watch() -> Reading {
    let cpu0 = cpu_times();
    let procs0 = process_times();
    std::thread::sleep(WINDOW);
    let cpu1 = cpu_times();
    let procs1 = process_times();
    let (busy0, total0) = cpu0;
    let (busy1, total1) = cpu1;
    let busy = if total1 > total0 {
        (busy1 - busy0) as f64 / (total1 - total0) as f64
    } else {
        0.0
    };
    let ticks = clock_ticks() * WINDOW.as_secs_f64();
    let mut top: Vec<(String, f64)> = procs1
        .iter()
        .filter_map(|(pid, (name, t1))| {
            let t0 = procs0.get(pid).map_or(0, |(_, t)| *t);
            (*t1 > t0).then(|| (name.clone(), (t1 - t0) as f64 / ticks))
        })
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(3);
    Reading {
        busy,
        load1: load_average(),
        top,
    }
}

/// (busy, total) jiffies of all CPUs, from /proc/stat.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle + iowait are the not-busy columns.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// pid -> (command, user+system jiffies) of every process.
fn process_times() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let time = fields
            .get(11)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
        out.insert(pid, (name, time));
    }
    out
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Jiffies per second (`sysconf(_SC_CLK_TCK)`).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_machine_is_named_with_its_busiest_processes() {
        let busy = Reading {
            busy: 0.45,
            load1: 1.7,
            top: vec![("rustc".into(), 0.9), ("cargo".into(), 0.05)],
        };
        let w = busy.warning("waypoint").unwrap();
        assert!(w.contains("45% busy") && w.contains("rustc 90%"), "{w}");
        let quiet = Reading { busy: 0.02, ..busy };
        assert!(quiet.warning("waypoint").is_none());
    }

    #[test]
    fn reads_this_machine() {
        let r = watch();
        assert!((0.0..=1.0).contains(&r.busy));
    }
}

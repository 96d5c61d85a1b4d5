//! The egret agent as the bench runs it: the release binary in the sealed
//! node's namespace, logging at `info` (access log on, debug off: what a
//! user runs), with its pid for memory and CPU readings.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use egret_e2e::node::{in_netns, NODE_ADDR};
use egret_e2e::process::Background;
use egret_e2e::Node;

use crate::procfs;

/// A running agent; dropping it stops it.
pub struct BenchAgent {
    _process: Background,
    pub pid: u32,
}

impl BenchAgent {
    /// Replaces the harness's (debug-logging) agent of `node` with a
    /// release agent at `info`, and waits until it is ready.
    pub fn start(node: &mut Node, egret: &Path, log: &Path) -> anyhow::Result<BenchAgent> {
        node.stop_agent();
        let config = node.config_dir().to_path_buf();
        let mut cmd = in_netns(&node.node_ns, &egret.to_string_lossy());
        cmd.arg("--config-dir").arg(&config).args([
            "run",
            "--dns-upstream",
            NODE_ADDR,
            "--log",
            "info",
        ]);
        // One data-plane thread: the waypoint case pins the agent to one core,
        // as it does nginx (one worker) and haproxy (nbthread 1).
        cmd.env("EGRET_WORKER_THREADS", "1");
        let mut process = Background::spawn("egret agent", cmd, log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let config_text = config.to_string_lossy().into_owned();
        while Instant::now() < deadline {
            process.check_running()?;
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("egret agent ready") {
                let pid = procfs::find_pid(|args| {
                    args.first().is_some_and(|a| a.ends_with("egret"))
                        && args.contains(&config_text.as_str())
                        && args.contains(&"run")
                });
                let Some(pid) = pid else {
                    bail!("agent is ready but its pid was not found");
                };
                return Ok(BenchAgent {
                    _process: process,
                    pid,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("agent not ready within 30 s; see {}", log.display())
    }

    /// Resident memory now, MiB.
    pub fn rss_mib(&self) -> f64 {
        procfs::rss_mib(self.pid)
    }
}

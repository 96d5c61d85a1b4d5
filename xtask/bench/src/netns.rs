//! Network namespaces the bench creates, sealed (no route off the machine)
//! and deleted when dropped.

use std::process::Command;

use anyhow::Context;
use egret_e2e::process::must;

/// A network namespace with only `lo` (and whatever the case adds to it).
pub struct BenchNs {
    pub name: String,
}

impl BenchNs {
    /// Creates `egb<pid>-<tag>` with lo up.
    pub fn new(tag: &str) -> anyhow::Result<BenchNs> {
        let name = format!("egb{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        must("ip", &["netns", "add", &name]).context("ip netns add")?;
        let ns = BenchNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NS ARGS…`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        must("ip", &full)
    }

    /// A command that runs `program` inside this namespace.
    pub fn cmd(&self, program: &str) -> Command {
        egret_e2e::node::in_netns(&self.name, program)
    }

    /// Runs `program args` inside this namespace; it must succeed.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = self.cmd(program).args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{program} {} in {}: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The namespace's file, for setns.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for BenchNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

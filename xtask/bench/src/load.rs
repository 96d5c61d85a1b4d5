//! Starting the `egret-load` tools and reading their one-line JSON answer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use egret_e2e::process::run_with_timeout;
use serde_json::Value;

/// Runs `cmd` (a load tool, however it was wrapped) with a hard time limit
/// and parses the last line of its stdout as JSON.
pub fn json(cmd: Command, limit: Duration) -> anyhow::Result<Value> {
    let out = run_with_timeout(cmd, limit)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "load tool failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("load tool printed {stdout:?}"))
}

/// `nsenter --net=NS egret-load ARGS…`.
pub fn in_ns(ns: &str, tool: &Path, args: &[&str]) -> Command {
    let mut cmd = egret_e2e::node::in_netns(ns, &tool.to_string_lossy());
    cmd.args(args);
    cmd
}

/// A number field of a tool's answer.
pub fn num(v: &Value, field: &str) -> f64 {
    v[field].as_f64().unwrap_or(f64::NAN)
}

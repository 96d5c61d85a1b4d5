//! wrk as the HTTP/1.1 keep-alive load, run as a mesh workload (`egret
//! exec`), bounded by time (-d) and by count (a Lua counter stops the
//! thread), with p50/p99/p99.9 from wrk's own histogram.

use std::path::Path;

use anyhow::{bail, Context};
use egret_e2e::Node;
use serde_json::Value;

/// Client connections (one wrk thread, pinned to the core the proxies do not use).
pub const CONNECTIONS: &str = "16";
/// At most this many requests per run.
const MAX_REQUESTS: u64 = 2_000_000;

/// Writes the Lua script wrk runs.
pub fn write_script(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("bench.lua");
    std::fs::write(
        &path,
        format!(
            r#"local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= {MAX_REQUESTS} then wrk.thread:stop() end
end
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('{{"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}}\n',
    s.requests, s.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#
        ),
    )?;
    Ok(path)
}

/// One wrk run of `ms` against `url` from a bookinfo workload.
pub fn run(node: &Node, script: &Path, url: &str, ms: u64) -> anyhow::Result<Value> {
    let duration = format!("{}s", ms.div_ceil(1000));
    let script = script.to_string_lossy();
    let args = [
        "taskset",
        "-c",
        "0",
        "wrk",
        "-t1",
        "-c",
        CONNECTIONS,
        "-d",
        &duration,
        "--timeout",
        "5s",
        "-s",
        &script,
        url,
    ];
    let out = node.exec("bookinfo", "bench-client", &args)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk {url} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("wrk printed no summary: {stdout}"))?;
    let v: Value = serde_json::from_str(line)?;
    let requests = v["requests"].as_f64().unwrap_or(0.0);
    if requests == 0.0 || v["non2xx"].as_f64().unwrap_or(0.0) > 0.0 {
        bail!(
            "wrk {url}: {requests} requests, {} not 2xx; output: {stdout}",
            v["non2xx"]
        );
    }
    Ok(v)
}

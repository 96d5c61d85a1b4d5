//! A workload that keeps running while the test does things around it
//! (kill the agent, restart it, change policy): `egret exec` of a small
//! driver that runs the shell commands the test hands it, one at a time,
//! inside the workload, and writes back their exit code and output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process::Background;
use crate::Node;

/// The driver: polls `<dir>/req.N`, runs it with `sh -c` (time-limited),
/// writes `<dir>/res.N` as JSON. Files are renamed into place, so neither
/// side ever reads half of one.
const DRIVER: &str = r#"
import json, os, subprocess, sys, time
d = sys.argv[1]
n = 0
while True:
    req = os.path.join(d, "req.%d" % n)
    if not os.path.exists(req):
        time.sleep(0.01)
        continue
    cmd = open(req).read()
    try:
        p = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=30)
        res = {"code": p.returncode, "stdout": p.stdout.decode("utf-8", "replace"), "stderr": p.stderr.decode("utf-8", "replace")}
    except subprocess.TimeoutExpired:
        res = {"code": -1, "stdout": "", "stderr": "timed out"}
    tmp = os.path.join(d, ".res.%d" % n)
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.rename(tmp, os.path.join(d, "res.%d" % n))
    n += 1
"#;

/// What one command did inside the workload.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A running workload taking commands.
pub struct LongWorkload {
    dir: tempfile::TempDir,
    exec: Background,
    next: u32,
}

impl LongWorkload {
    /// Starts the driver as a workload of `namespace`/`service_account`
    /// (`exec_args` go to `egret exec`, e.g. `--cap-add NET_ADMIN`).
    pub fn start(
        node: &Node,
        namespace: &str,
        service_account: &str,
        exec_args: &[&str],
    ) -> anyhow::Result<LongWorkload> {
        let dir = tempfile::Builder::new().prefix("egret-wl-").tempdir()?;
        let driver = dir.path().join("driver.py");
        std::fs::write(&driver, DRIVER)?;
        let config = node.config_dir().to_string_lossy().into_owned();
        let mut args = vec![
            "--config-dir",
            &config,
            "exec",
            "-n",
            namespace,
            "--service-account",
            service_account,
        ];
        args.extend_from_slice(exec_args);
        let driver_path = driver.to_string_lossy().into_owned();
        let dir_path = dir.path().to_string_lossy().into_owned();
        args.extend_from_slice(&["--", "python3", "-u", &driver_path, &dir_path]);
        let name = format!(
            "workload-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let exec = node.spawn_on_node(&name, &crate::bin::egret().to_string_lossy(), &args)?;
        let mut w = LongWorkload { dir, exec, next: 0 };
        // Up when it answers.
        let ran = w.run("true")?;
        if ran.code != 0 {
            bail!("the workload driver did not start: {ran:?}");
        }
        Ok(w)
    }

    /// Runs `shell` inside the workload and returns what it did.
    pub fn run(&mut self, shell: &str) -> anyhow::Result<Ran> {
        let n = self.next;
        self.next += 1;
        let tmp = self.path(&format!(".req.{n}"));
        std::fs::write(&tmp, shell)?;
        std::fs::rename(&tmp, self.path(&format!("req.{n}")))?;
        let res = self.path(&format!("res.{n}"));
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&res) {
                let v: serde_json::Value = serde_json::from_str(&text).context("driver result")?;
                return Ok(Ran {
                    code: v["code"].as_i64().unwrap_or(-1) as i32,
                    stdout: v["stdout"].as_str().unwrap_or_default().to_string(),
                    stderr: v["stderr"].as_str().unwrap_or_default().to_string(),
                });
            }
            self.exec
                .check_running()
                .context("the workload (egret exec) ended")?;
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("the workload did not finish `{shell}` within 40 s")
    }

    /// A file in the workload's folder (readable and writable by both sides).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Whether `egret exec` is still running.
    pub fn running(&mut self) -> bool {
        self.exec.check_running().is_ok()
    }
}

//! A workload whose one connection stays open while the test changes the
//! config: `egret exec` runs the `e2e-client` binary, which prints a line
//! per step and waits at `wait:` steps for a file the test creates.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::bin::egret;
use crate::node::in_netns;
use crate::walkthrough::{WORKLOAD_NS, WORKLOAD_SA};
use crate::Node;

/// The running workload.
pub struct Held {
    child: Child,
    lines: mpsc::Receiver<String>,
    gates: tempfile::TempDir,
}

impl Held {
    /// Starts `client` (the `e2e-client` binary) as the walkthrough's
    /// workload with `args`; `wait:NAME` steps are rewritten to wait for
    /// [`Held::open`]`(NAME)`. Gates live in a folder of their own.
    pub fn start(node: &Node, client: &Path, args: &[&str]) -> anyhow::Result<Held> {
        let gates = tempfile::Builder::new().prefix("egret-gates-").tempdir()?;
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.strip_prefix("wait:") {
                Some(name) => format!("wait:{}", gates.path().join(name).display()),
                None => a.to_string(),
            })
            .collect();
        let mut cmd = in_netns(&node.node_ns, &egret().to_string_lossy());
        cmd.arg("--config-dir")
            .arg(node.config_dir())
            .args([
                "exec",
                "-n",
                WORKLOAD_NS,
                "--service-account",
                WORKLOAD_SA,
                "--",
            ])
            .arg(client)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("start the held workload")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Held {
            child,
            lines,
            gates,
        })
    }

    /// The next line the workload prints (10 s at most).
    pub fn next(&self) -> anyhow::Result<String> {
        match self.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => Ok(line),
            Err(_) => bail!("the held workload printed nothing within 10 s"),
        }
    }

    /// Lets the workload past its `wait:NAME` step, and reads its `go`.
    pub fn open(&self, name: &str) -> anyhow::Result<()> {
        std::fs::write(self.gate(name), b"")?;
        let line = self.next()?;
        if line != "go" {
            bail!("expected `go` after opening {name}, got {line:?}");
        }
        Ok(())
    }

    fn gate(&self, name: &str) -> PathBuf {
        self.gates.path().join(name)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A test runs its workload to the end; one that failed halfway is
        // given a moment, then killed (its steps are bounded in time anyway).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

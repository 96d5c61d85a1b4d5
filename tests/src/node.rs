//! A sealed test "node": the agent, dnsmasq and workloads in one network
//! namespace with no route off the machine; httpbin in an "external" one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bin::{egret, require_root};
use crate::process::{must, run_with_timeout, Background};

/// The node's address on the link to the external namespace (dnsmasq's too).
pub const NODE_ADDR: &str = "192.0.2.1";
/// The external host playing httpbin.org.
pub const EXTERNAL_ADDR: &str = "192.0.2.10";

/// Longer than the agent's log batching delay.
pub const LOG_SETTLE: Duration = Duration::from_millis(30);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Knobs of a test node.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Extra dnsmasq `--address=/name/ip` records besides httpbin.org.
    pub dns_records: Vec<(String, String)>,
    /// More httpbins behind TLS on the external host (gunicorn `--certfile`).
    pub tls_httpbins: Vec<TlsHttpbin>,
    /// `--ca-roots` files the agent trusts besides the system roots.
    pub ca_roots: Vec<PathBuf>,
    /// Leave the agent to the test ([`Node::start_agent_with`]), e.g. to
    /// start it in Kubernetes mode once a fake API server listens.
    pub defer_agent: bool,
}

/// An httpbin serving HTTPS on `EXTERNAL_ADDR:port`.
#[derive(Clone, Debug)]
pub struct TlsHttpbin {
    /// Port to listen on.
    pub port: u16,
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// A running test node. Dropping it stops everything and deletes the
/// namespaces.
pub struct Node {
    pub node_ns: String,
    pub ext_ns: String,
    pub config: tempfile::TempDir,
    logs: PathBuf,
    agent: Option<Background>,
    dnsmasq: Background,
    httpbin: Background,
    tls_httpbins: Vec<Background>,
    ca_roots: Vec<PathBuf>,
    /// How many times an agent was started (each logs to its own file).
    agent_starts: u32,
}

impl Node {
    /// Builds the namespaces, starts httpbin, dnsmasq and the agent, and
    /// waits until the agent serves its control socket.
    pub fn start(opts: NodeOptions) -> anyhow::Result<Node> {
        require_root();
        let id = format!(
            "egt{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let node_ns = format!("{id}-node");
        let ext_ns = format!("{id}-ext");
        let config = tempfile::Builder::new().prefix("egret-e2e-").tempdir()?;
        let logs = config.path().join(".logs");
        std::fs::create_dir_all(&logs)?;
        for ns in [&node_ns, &ext_ns] {
            must("ip", &["netns", "add", ns])?;
            must("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        let guard = NetnsGuard(vec![node_ns.clone(), ext_ns.clone()]);
        must(
            "ip",
            &[
                "-n", &node_ns, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0",
                "netns", &ext_ns,
            ],
        )?;
        must(
            "ip",
            &[
                "-n",
                &node_ns,
                "addr",
                "add",
                &format!("{NODE_ADDR}/24"),
                "dev",
                "ext0",
            ],
        )?;
        must("ip", &["-n", &node_ns, "link", "set", "ext0", "up"])?;
        must(
            "ip",
            &[
                "-n",
                &ext_ns,
                "addr",
                "add",
                &format!("{EXTERNAL_ADDR}/24"),
                "dev",
                "eth0",
            ],
        )?;
        must("ip", &["-n", &ext_ns, "link", "set", "eth0", "up"])?;
        must(
            "ip",
            &["-n", &ext_ns, "route", "add", "default", "via", NODE_ADDR],
        )?;

        let mut httpbin_cmd = in_netns(&ext_ns, "/usr/bin/gunicorn");
        httpbin_cmd.args([
            "-b",
            &format!("{EXTERNAL_ADDR}:80"),
            "-w",
            "2",
            "--access-logfile",
            "-",
            "httpbin:app",
        ]);
        let httpbin = Background::spawn("httpbin", httpbin_cmd, &logs.join("httpbin.log"))?;
        let mut tls_httpbins = Vec::new();
        for t in &opts.tls_httpbins {
            let mut cmd = in_netns(&ext_ns, "/usr/bin/gunicorn");
            cmd.args(["-b", &format!("{EXTERNAL_ADDR}:{}", t.port), "-w", "2"])
                .arg("--certfile")
                .arg(&t.cert)
                .arg("--keyfile")
                .arg(&t.key);
            if let Some(ca) = &t.client_ca {
                // 2 = ssl.CERT_REQUIRED.
                cmd.args(["--cert-reqs", "2", "--ca-certs"]).arg(ca);
            }
            cmd.args(["--access-logfile", "-", "httpbin:app"]);
            let name = format!("httpbin-tls-{}", t.port);
            tls_httpbins.push(Background::spawn(
                &name,
                cmd,
                &logs.join(format!("{name}.log")),
            )?);
        }

        let mut dns_cmd = in_netns(&node_ns, "dnsmasq");
        dns_cmd.args([
            "-k",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &format!("--listen-address={NODE_ADDR}"),
            "--user=root",
            "--log-queries",
            "--log-facility=-",
            &format!("--pid-file={}", logs.join("dnsmasq.pid").display()),
            &format!("--address=/httpbin.org/{EXTERNAL_ADDR}"),
        ]);
        for (name, ip) in &opts.dns_records {
            dns_cmd.arg(format!("--address=/{name}/{ip}"));
        }
        let dnsmasq = Background::spawn("dnsmasq", dns_cmd, &logs.join("dnsmasq.log"))?;

        let mut node = Node {
            node_ns,
            ext_ns,
            config,
            logs,
            agent: None,
            dnsmasq,
            httpbin,
            tls_httpbins,
            ca_roots: opts.ca_roots.clone(),
            agent_starts: 0,
        };
        std::mem::forget(guard);
        node.wait_httpbin()?;
        node.wait_dnsmasq()?;
        for t in &opts.tls_httpbins {
            node.wait_tls_httpbin(t.port)?;
        }
        if !opts.defer_agent {
            node.start_agent()?;
        }
        Ok(node)
    }

    /// Starts (or restarts) the agent and waits for its control socket.
    pub fn start_agent(&mut self) -> anyhow::Result<()> {
        self.start_agent_with(&[])
    }

    /// Starts (or restarts) the agent with `extra` arguments to `egret run`.
    /// Each start logs to its own file; [`Node::agent_log`] reads the
    /// current one.
    pub fn start_agent_with(&mut self, extra: &[&str]) -> anyhow::Result<()> {
        if let Some(mut old) = self.agent.take() {
            old.stop();
        }
        let mut cmd = in_netns(&self.node_ns, &egret().to_string_lossy());
        cmd.arg("--config-dir").arg(self.config.path()).args([
            "run",
            "--dns-upstream",
            NODE_ADDR,
            "--log",
            "info,egret=debug",
        ]);
        for ca in &self.ca_roots {
            cmd.arg("--ca-roots").arg(ca);
        }
        cmd.args(extra);
        self.agent_starts += 1;
        let mut agent = Background::spawn("egret agent", cmd, &self.agent_log_path())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            agent
                .check_running()
                .map_err(|e| anyhow::anyhow!("{e}; agent log:\n{}", self.agent_log()))?;
            if self.agent_log().contains("egret agent ready") {
                self.agent = Some(agent);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("agent not ready within 20 s; log:\n{}", self.agent_log())
    }

    /// Stops the agent (SIGTERM); returns whether it exited cleanly.
    pub fn stop_agent(&mut self) -> bool {
        self.agent.take().map(|mut a| a.stop()).unwrap_or(true)
    }

    /// The running agent, handed to the test (to signal it and time its
    /// exit); stopped when dropped.
    pub fn take_agent(&mut self) -> Option<Background> {
        self.agent.take()
    }

    /// Kills the agent with SIGKILL (a crash).
    pub fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.kill();
        }
    }

    /// Starts `program args…` in the node namespace, in the background,
    /// logging to `<name>.log`; stopped when the handle drops.
    pub fn spawn_on_node(
        &self,
        name: &str,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<Background> {
        let mut cmd = in_netns(&self.node_ns, program);
        cmd.args(args);
        Background::spawn(name, cmd, &self.logs.join(format!("{name}.log")))
    }

    /// The log file of a background process started by [`Node::spawn_on_node`].
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn agent_log_path(&self) -> PathBuf {
        match self.agent_starts {
            0 | 1 => self.logs.join("agent.log"),
            n => self.logs.join(format!("agent.{n}.log")),
        }
    }

    fn wait_httpbin(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let out = in_netns(&self.node_ns, "curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-m",
                    "1",
                    &format!("http://{EXTERNAL_ADDR}/get"),
                ])
                .output()?;
            if out.status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "httpbin did not come up; log:\n{}",
            std::fs::read_to_string(self.logs.join("httpbin.log")).unwrap_or_default()
        )
    }

    /// Waits until dnsmasq answers on the node (the agent resolves
    /// upstream names through it from its first request on).
    fn wait_dnsmasq(&self) -> anyhow::Result<()> {
        const QUERY: &str = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(0.5)\ns.sendto(bytes.fromhex('424201000001000000000000076874747062696e036f72670000010001'),(sys.argv[1],53))\ns.recv(512)";
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let out = in_netns(&self.node_ns, "python3")
                .args(["-c", QUERY, NODE_ADDR])
                .output()?;
            if out.status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "dnsmasq did not answer; log:\n{}",
            std::fs::read_to_string(self.logs.join("dnsmasq.log")).unwrap_or_default()
        )
    }

    /// Waits until `EXTERNAL_ADDR:port` accepts TLS connections (a refused
    /// client certificate counts: the server is up).
    fn wait_tls_httpbin(&self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("https://{EXTERNAL_ADDR}:{port}/get");
        while Instant::now() < deadline {
            let out = in_netns(&self.node_ns, "curl")
                .args(["-sk", "-o", "/dev/null", "-m", "1", &url])
                .output()?;
            // 7: connection refused, 28: timeout; anything else got an answer.
            if !matches!(out.status.code(), Some(7) | Some(28)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "TLS httpbin on port {port} did not come up; log:\n{}",
            std::fs::read_to_string(self.logs.join(format!("httpbin-tls-{port}.log")))
                .unwrap_or_default()
        )
    }

    /// httpbin's access log so far (gunicorn's, one line per request).
    pub fn httpbin_log(&self) -> String {
        std::fs::read_to_string(self.logs.join("httpbin.log")).unwrap_or_default()
    }

    /// The agent's log so far. The agent batches its log writes (a few ms);
    /// waiting a little first makes every line emitted before this call
    /// visible.
    pub fn agent_log(&self) -> String {
        std::thread::sleep(LOG_SETTLE);
        std::fs::read_to_string(self.agent_log_path()).unwrap_or_default()
    }

    /// The config folder the agent runs on.
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// Runs `egret --config-dir … ARGS` inside the node namespace.
    pub fn egret(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.egret_stdin(args, None)
    }

    /// Like [`Node::egret`], feeding `stdin`.
    pub fn egret_stdin(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut cmd = in_netns(&self.node_ns, &egret().to_string_lossy());
        cmd.arg("--config-dir").arg(self.config.path()).args(args);
        let Some(input) = stdin else {
            return run_with_timeout(cmd, Duration::from_secs(60));
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// `egret apply -f -` with `yaml`; fails unless it succeeds.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        let before = self.generation();
        let out = self.egret_stdin(&["apply", "-f", "-"], Some(yaml))?;
        if !out.status.success() {
            bail!(
                "egret apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        // Like `kubectl apply`, egret returns once the object is stored; the
        // agent puts it in force a moment later. Tests act on it at once, so
        // wait for the agent's next config generation.
        let changed = printed.lines().any(|l| !l.ends_with(" unchanged"));
        if let (true, Some(before)) = (changed, before) {
            let applied = self.wait_until(Duration::from_secs(5), || {
                self.generation().is_some_and(|g| g > before)
            });
            if !applied {
                bail!("the agent did not take up the applied manifest within 5 s");
            }
        }
        Ok(printed)
    }

    /// The agent's config generation, when an agent answers.
    pub fn generation(&self) -> Option<u64> {
        let out = self.egret(&["status", "--generation"]).ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// `egret` that must succeed; returns stdout.
    pub fn egret_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.egret(args)?;
        if !out.status.success() {
            bail!(
                "egret {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `egret exec -n NS --service-account SA -- CMD…` (30 s limit).
    pub fn exec(&self, ns: &str, sa: &str, cmd: &[&str]) -> anyhow::Result<Output> {
        let mut args = vec!["exec", "-n", ns, "--service-account", sa, "--"];
        args.extend_from_slice(cmd);
        self.egret(&args)
    }

    /// The agent's status (`egret status -o json`).
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let text = self.egret_ok(&["status", "-o", "json"])?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Polls `check` every 20 ms until it is true or `limit` passes.
    pub fn wait_until(&self, limit: Duration, mut check: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Runs a command in the node namespace, outside any workload.
    pub fn on_node(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = in_netns(&self.node_ns, program);
        cmd.args(args);
        run_with_timeout(cmd, Duration::from_secs(30))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_agent();
        // An agent stopped with workloads still running leaves its kernel
        // programs pinned on purpose (they keep enforcing); a test must not.
        let _ = self.egret(&["cleanup"]);
        self.dnsmasq.stop();
        self.httpbin.stop();
        for t in &mut self.tls_httpbins {
            t.stop();
        }
        let _ = NetnsGuard(vec![self.node_ns.clone(), self.ext_ns.clone()]);
    }
}

/// Deletes network namespaces when dropped.
struct NetnsGuard(Vec<String>);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `nsenter --net=/run/netns/NS PROGRAM`: only the network namespace
/// changes (unlike `ip netns exec`, which remounts /sys and hides the cgroup
/// mounts the agent needs).
pub fn in_netns(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    cmd
}

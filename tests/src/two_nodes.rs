//! A second sealed "node" next to a test [`Node`]: its own network namespace
//! on a veth from the first node, running a standalone `egret waypoint`.
//! It reaches httpbin and dnsmasq through the first node (which forwards),
//! and shares the first node's CA folder, so both trust the same root.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::bin::egret;
use crate::manifests::BOOKINFO_NAMESPACE;
use crate::node::{in_netns, Node, NODE_ADDR};
use crate::process::{must, Background};
use crate::NodeOptions;

/// The first node's address on the link to the waypoint node.
pub const LINK_ADDR: &str = "198.51.100.1";
/// The waypoint's address: the Gateway's `spec.addresses` value.
pub const WAYPOINT_ADDR: &str = "198.51.100.2";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The walkthrough's namespace, Gateway and ServiceEntry, except that the
/// Gateway has an address (so it is remote, reached over HBONE) and the
/// ServiceEntry a fixed VIP (both sides must agree on it).
pub fn remote_waypoint_mesh() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: istio-egress
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: egress-waypoint
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: egress-waypoint
  namespace: istio-egress
spec:
  gatewayClassName: istio-waypoint
  addresses:
  - type: IPAddress
    value: {WAYPOINT_ADDR}
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin.org
  namespace: istio-egress
  labels:
    istio.io/use-waypoint: egress-waypoint
spec:
  hosts:
  - httpbin.org
  addresses:
  - 240.240.10.1
  ports:
  - name: http
    number: 80
    protocol: HTTP
  resolution: DNS
"#
    )
}

/// A node with [`remote_waypoint_mesh`] in force, its VIP in the kernel.
pub fn node_with_remote_waypoint() -> anyhow::Result<Node> {
    let node = Node::start(NodeOptions::default())?;
    node.apply(BOOKINFO_NAMESPACE)?;
    node.apply(&remote_waypoint_mesh())?;
    let captured = node.wait_until(Duration::from_secs(5), || {
        node.status()
            .map(|s| s["kernel_services"].to_string().contains("240.240.10.1 "))
            .unwrap_or(false)
    });
    assert!(
        captured,
        "VIP never reached the kernel; log:\n{}",
        node.agent_log()
    );
    Ok(node)
}

/// A running standalone waypoint in its own namespace. Dropping it stops
/// the process and deletes the namespace.
pub struct WaypointNode {
    /// Its network namespace.
    pub ns: String,
    /// Its config folder (manifests written by the test).
    pub config: tempfile::TempDir,
    log: PathBuf,
    process: Option<Background>,
}

impl WaypointNode {
    /// Builds the namespace and link beside `node`, writes `manifests` into
    /// a config folder of its own, and starts `egret waypoint --name NAME`
    /// with `extra` arguments; waits until it listens on 15008.
    pub fn start(node: &Node, manifests: &str, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let mut wp = Self::linked(node)?;
        std::fs::write(wp.config.path().join("mesh.yaml"), manifests)?;
        let ca_dir = node.config_dir().join(".egret").join("ca");
        let mut args: Vec<String> = vec![
            "--config-dir".into(),
            wp.config.path().display().to_string(),
        ];
        args.extend(
            [
                "waypoint",
                "--name",
                name,
                "--listen",
                &format!("{WAYPOINT_ADDR}:15008"),
                "--dns-upstream",
                NODE_ADDR,
                "--log",
                "info,egret=debug",
                "--ca-dir",
                &ca_dir.display().to_string(),
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|a| a.to_string()));
        wp.launch(&args)?;
        Ok(wp)
    }

    /// The namespace and its link beside `node`, nothing running yet.
    pub fn linked(node: &Node) -> anyhow::Result<Self> {
        let ns = format!(
            "egw{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        must("ip", &["netns", "add", &ns])?;
        let mut wp = WaypointNode {
            ns: ns.clone(),
            config: tempfile::Builder::new().prefix("egret-e2e-wp-").tempdir()?,
            log: PathBuf::new(),
            process: None,
        };
        wp.log = wp.config.path().join("waypoint.log");
        must("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        // The link may exist from an earlier waypoint of the same node.
        let _ = must("ip", &["-n", &node.node_ns, "link", "del", "wp0"]);
        must(
            "ip",
            &[
                "-n",
                &node.node_ns,
                "link",
                "add",
                "wp0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
        )?;
        must(
            "ip",
            &[
                "-n",
                &node.node_ns,
                "addr",
                "add",
                &format!("{LINK_ADDR}/24"),
                "dev",
                "wp0",
            ],
        )?;
        must("ip", &["-n", &node.node_ns, "link", "set", "wp0", "up"])?;
        must(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{WAYPOINT_ADDR}/24"),
                "dev",
                "eth0",
            ],
        )?;
        must("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        must(
            "ip",
            &["-n", &ns, "route", "add", "default", "via", LINK_ADDR],
        )?;
        // The first node routes between the waypoint and the external host.
        let out = in_netns(&node.node_ns, "sysctl")
            .args(["-w", "net.ipv4.ip_forward=1"])
            .output()?;
        if !out.status.success() {
            bail!(
                "enabling forwarding: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(wp)
    }

    /// Gives this node `ip` too and routes it here from `node`: what
    /// kube-proxy does for a Service's cluster IP, minus the translation.
    pub fn add_address(&self, node: &Node, ip: &str) -> anyhow::Result<()> {
        must(
            "ip",
            &[
                "-n",
                &self.ns,
                "addr",
                "add",
                &format!("{ip}/32"),
                "dev",
                "eth0",
            ],
        )?;
        must(
            "ip",
            &[
                "-n",
                &node.node_ns,
                "route",
                "add",
                &format!("{ip}/32"),
                "via",
                WAYPOINT_ADDR,
            ],
        )?;
        Ok(())
    }

    /// Starts `egret ARGS` here and waits until it listens for HBONE.
    pub fn launch(&mut self, args: &[String]) -> anyhow::Result<()> {
        let mut cmd = in_netns(&self.ns, &egret().to_string_lossy());
        cmd.args(args);
        let mut process = Background::spawn("egret waypoint", cmd, &self.log)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            process
                .check_running()
                .map_err(|e| anyhow::anyhow!("{e}; waypoint log:\n{}", self.log()))?;
            if self.log().contains("HBONE listening") {
                self.process = Some(process);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("waypoint not listening within 20 s; log:\n{}", self.log())
    }

    /// The waypoint process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Background::pid)
    }

    /// The waypoint process, handed to the test (to signal it and time its
    /// exit); stopped when dropped.
    pub fn take_process(&mut self) -> Option<Background> {
        self.process.take()
    }

    /// The waypoint's log so far.
    pub fn log(&self) -> String {
        // The waypoint batches its log writes; see `node::LOG_SETTLE`.
        std::thread::sleep(crate::node::LOG_SETTLE);
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WaypointNode {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output();
    }
}

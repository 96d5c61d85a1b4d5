//! Kubernetes for the end-to-end suites, with no cluster: the agent's fake
//! API server (agent/tests/support/fake_api.rs) served inside a test
//! node's namespace, pods made as kubelet would (fake_pod.rs), and the
//! parts of kubelet and the deployment controller a waypoint Deployment
//! needs: its Secret volume written to files, its container's arguments
//! run in a second node, its readiness probe asked, and the Deployment's
//! status set from it.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::Value;

use crate::node::in_netns;
use crate::two_nodes::WaypointNode;
use crate::Node;

#[path = "../../agent/tests/support/fake_api.rs"]
pub mod fake_api;
#[path = "../../agent/tests/support/fake_pod.rs"]
pub mod fake_pod;

pub use fake_api::Fake;

/// The fake API server, listening on all addresses of a node's namespace.
pub struct Api {
    /// Its state (objects, requests).
    pub fake: Fake,
    /// Its port.
    pub port: u16,
    // Serves the fake; dropped last.
    _runtime: tokio::runtime::Runtime,
}

impl Api {
    /// Serves a new fake API server in `node`'s namespace.
    pub fn start_in(node: &Node) -> anyhow::Result<Api> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let ns = std::fs::File::open(Path::new("/run/netns").join(&node.node_ns))?;
        let listener = std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this helper thread only, with a valid netns fd.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let l = std::net::TcpListener::bind("0.0.0.0:0")?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .join()
            .expect("the setns thread does not panic")
        })
        .context("listening in the node's namespace")?;
        let port = listener.local_addr()?.port();
        let fake = Fake::new();
        let serving = fake.clone();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            fake_api::serve_on(serving, listener);
            Ok::<_, std::io::Error>(())
        })?;
        Ok(Api {
            fake,
            port,
            _runtime: runtime,
        })
    }

    /// A kubeconfig in `dir` naming the server at `host` (the address the
    /// client reaches the node at).
    pub fn kubeconfig(&self, dir: &Path, host: &str) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let addr = format!("{host}:{}", self.port).parse()?;
        Ok(fake_api::kubeconfig(dir, addr))
    }

    /// Applies every document of `yaml`.
    pub fn apply_yaml(&self, yaml: &str) {
        for doc in yaml.split("\n---") {
            if doc.lines().any(|l| l.starts_with("kind:")) {
                self.fake.apply_yaml(doc);
            }
        }
    }

    /// Waits (up to 20 s) for `probe` to find something in the API.
    pub fn wait_for<T>(
        &self,
        what: &str,
        mut probe: impl FnMut(&Fake) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(v) = probe(&self.fake) {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("not in the API within 20 s: {what}")
    }
}

/// Runs a waypoint Deployment's first container in `wp`, as kubelet would
/// start its pod: Secret volumes written to files under `files`, their
/// mount paths (and emptyDirs) rewritten to those files in the arguments,
/// plus `extra` arguments for what a cluster would give the pod (its DNS,
/// its kubeconfig). Then asks its readiness probe, as kubelet does, and
/// reports the replica available, as the deployment controller does.
pub fn run_deployment(
    api: &Api,
    deployment: &Value,
    wp: &mut WaypointNode,
    files: &Path,
    extra: &[String],
) -> anyhow::Result<()> {
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .context("namespace")?;
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().context("volume name")?;
        let mount = m["mountPath"].as_str().context("mountPath")?;
        let volume = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .with_context(|| format!("volume {name}"))?;
        let dir = files.join(name);
        std::fs::create_dir_all(&dir)?;
        if let Some(secret) = volume["secret"]["secretName"].as_str() {
            let obj = api
                .fake
                .get("secrets", namespace, secret)
                .with_context(|| format!("Secret {namespace}/{secret} of the pod"))?;
            for (key, value) in obj["data"].as_object().into_iter().flatten() {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.as_str().unwrap_or(""))?;
                std::fs::write(dir.join(key), bytes)?;
            }
        }
        mounts.push((mount.to_string(), dir));
    }
    let mut args: Vec<String> = container["args"]
        .as_array()
        .context("container args")?
        .iter()
        .map(|a| {
            let mut a = a.as_str().unwrap_or_default().to_string();
            for (mount, dir) in &mounts {
                a = a.replace(mount.as_str(), &dir.display().to_string());
            }
            a
        })
        .collect();
    args.extend(extra.iter().cloned());
    wp.launch(&args)?;
    let probe = &container["readinessProbe"]["httpGet"];
    let url = format!(
        "http://127.0.0.1:{}{}",
        probe["port"].as_u64().context("probe port")?,
        probe["path"].as_str().context("probe path")?
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = in_netns(&wp.ns, "curl")
            .args(["-sf", "-m", "1", "-o", "/dev/null", &url])
            .output()?;
        if out.status.success() {
            break;
        }
        if Instant::now() > deadline {
            bail!("waypoint not ready at {url}; log:\n{}", wp.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let name = deployment["metadata"]["name"].as_str().context("name")?;
    let generation = api
        .fake
        .get("deployments", namespace, name)
        .and_then(|d| d["metadata"]["generation"].as_i64())
        .unwrap_or(1);
    api.fake.set_status(
        "deployments",
        namespace,
        name,
        serde_json::json!({
            "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1,
        }),
    );
    Ok(())
}

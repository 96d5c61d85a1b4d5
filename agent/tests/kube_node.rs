//! Privileged: the real `egret run --kubernetes` binary, as the DaemonSet
//! runs it, against a fake API server. The agent runs in a "node" network
//! namespace made here, where the fake listens on loopback; one pod is made
//! as kubelet would (its own namespace, a process in a `pod<uid>` cgroup).
//! The agent must put the walkthrough's ServiceEntry in force with the
//! addresses it publishes, adopt and enroll the pod, and let it go when the
//! API deletes it. Nothing leaves the namespaces made here.
//!
//! Needs root and the built programs (`cargo xtask build-ebpf`, or
//! `EGRET_BPF_OBJECT=PATH`). It fails, never skips, when it cannot run.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egret_common::OUTBOUND_PORT;
use serde_json::{json, Value};

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/fake_pod.rs"]
mod fake_pod;

use fake_api::{kubeconfig, serve_on, Fake};
use fake_pod::{run, FakePod};

const EGRET: &str = env!("CARGO_BIN_EXE_egret");
const WALKTHROUGH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/examples/walkthrough"
);

/// The node's network namespace, removed on drop.
struct NodeNetns(String);

impl NodeNetns {
    fn new() -> NodeNetns {
        let name = format!("egret-kn-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        NodeNetns(name)
    }

    /// A listener on 127.0.0.1 inside the namespace.
    fn listen(&self) -> std::net::TcpListener {
        let ns = std::fs::File::open(Path::new("/run/netns").join(&self.0)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only, with a valid netns fd.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.set_nonblocking(true).unwrap();
                l
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for NodeNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The agent process; stopped (SIGTERM, then SIGKILL) on drop.
struct Agent {
    child: Child,
    log: PathBuf,
    config_dir: PathBuf,
    /// The node's namespace: the control socket serves callers there only.
    netns: String,
}

impl Agent {
    fn start(node: &NodeNetns, config_dir: &Path, kubeconfig: &Path) -> Agent {
        let log = config_dir.join("agent.log");
        let out = std::fs::File::create(&log).unwrap();
        // nsenter changes only the network namespace (`ip netns exec` would
        // remount /sys and hide the cgroup v2 mount the programs attach to).
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.0))
            .args([EGRET, "--config-dir"])
            .arg(config_dir)
            .args(["run", "--kubernetes", "--kubeconfig"])
            .arg(kubeconfig)
            .args([
                "--node-name",
                "node-a",
                "--status-writer",
                "always",
                "--waypoint-image",
                "egret:test",
                "--dns-upstream",
                "127.0.0.1",
                "--log",
                "info,egret=debug",
            ])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Agent {
            child,
            log,
            config_dir: config_dir.to_path_buf(),
            netns: node.0.clone(),
        }
    }

    fn egret(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(EGRET)
            .arg("--config-dir")
            .arg(&self.config_dir)
            .args(args)
            .output()
            .unwrap()
    }

    /// `egret status -o json`, once the control socket answers.
    fn status(&self) -> Option<Value> {
        let out = self.egret(&["status", "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to 20 s for a status satisfying `ok`.
    fn status_where(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(code)) = self.child.try_wait() {
                panic!("agent exited ({code}):\n{}", self.log());
            }
            if let Some(s) = self.status() {
                if ok(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no status with {what}; last {last:#?}\nagent log:\n{}",
            self.log()
        );
    }

    /// SIGTERM; whether it exited cleanly within 10 s.
    fn stop(&mut self) -> bool {
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(code)) = self.child.try_wait() {
                return code.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) && !self.stop() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // In Kubernetes mode a stopping agent leaves its programs in force
        // for the next one (pods run on); a test must not.
        let _ = Command::new(EGRET)
            .arg("--config-dir")
            .arg(&self.config_dir)
            .arg("cleanup")
            .output();
    }
}

fn walkthrough(file: &str) -> String {
    std::fs::read_to_string(format!("{WALKTHROUGH}/{file}")).unwrap()
}

fn has_workload(status: &Value, name: &str, cookie: u64) -> bool {
    let workload = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["name"] == name && w["enrolled"] == true && w["netns_cookie"] == cookie);
    let kernel = status["kernel_enrolled"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e[0] == cookie);
    workload && kernel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_agent_adopts_its_pods_and_publishes_addresses() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "kube_node runs the agent (eBPF, namespaces): run it as root"
    );
    let node = NodeNetns::new();
    let fake = Fake::new();
    let addr = serve_on(
        fake.clone(),
        tokio::net::TcpListener::from_std(node.listen()).unwrap(),
    );
    let uid = format!("7a2b3c4d-5e6f-4a1b-9c2d-{:012x}", std::process::id());
    let pod = FakePod::start(&uid, "kn-pod");
    pod.wait_ready();
    let cookie = pod.cookie();

    fake.apply_yaml(&walkthrough("step1-bookinfo-namespace.yaml"));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "istio-egress", "labels": {
            "istio.io/dataplane-mode": "ambient",
            "istio.io/use-waypoint": "egress-waypoint"
        }}
    }));
    fake.apply_yaml(&walkthrough("step2-gateway.yaml"));
    fake.apply_yaml(&walkthrough("step3-serviceentry.yaml"));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "productpage-v1-abc", "namespace": "bookinfo", "uid": uid},
        "spec": {"nodeName": "node-a", "serviceAccountName": "bookinfo-productpage", "containers": []},
        "status": {"phase": "Running", "podIP": "10.244.0.9"}
    }));

    let tmp = tempfile::tempdir().unwrap();
    let kc = kubeconfig(tmp.path(), addr);
    let mut agent = Agent::start(&node, tmp.path(), &kc);

    let status = agent.status_where("the ServiceEntry and the adopted pod", |s| {
        let services: Vec<&str> = s["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        services.contains(&"httpbin.org=240.240.0.2,2001:2::2")
            && has_workload(s, "productpage-v1-abc", cookie)
    });
    assert!(!status["kernel_services"].as_array().unwrap().is_empty());
    assert!(pod.listening(OUTBOUND_PORT), "outbound listener in the pod");
    let patch = fake
        .patches()
        .into_iter()
        .find(|p| p.path.ends_with("/serviceentries/httpbin.org/status"))
        .expect("the ServiceEntry's status was patched");
    assert_eq!(patch.body["status"]["addresses"][0]["value"], "240.240.0.2");
    let pod_watch = fake.lock().requests.iter().any(|r| {
        r.starts_with("GET /api/v1/pods?") && r.contains("fieldSelector=spec.nodeName%3Dnode-a")
    });
    assert!(pod_watch, "pods are listed for this node only");

    // `egret exec` has no pod network here.
    let out = agent.egret(&["exec", "-n", "bookinfo", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Kubernetes mode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The pod is deleted: released.
    fake.delete("pods", "bookinfo", "productpage-v1-abc");
    agent.status_where("no workload left", |s| {
        s["workloads"].as_array().unwrap().is_empty()
            && !s["kernel_enrolled"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e[0] == cookie)
    });
    assert!(!pod.listening(OUTBOUND_PORT), "listener closed");
    assert!(agent.stop(), "clean exit on SIGTERM:\n{}", agent.log());
}

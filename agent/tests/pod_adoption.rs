//! Privileged: Kubernetes pod adoption with the real kernel programs. The
//! test plays kubelet and the container runtime: a network namespace it
//! creates, a process inside it placed in a cgroup named as kubelet names
//! a pod's (`kubepods.slice/kubepods-pod<uid>.slice` under the cgroup v2
//! root). Fed the Pod object, the agent must find that namespace through
//! /proc, open its listeners inside it and enroll its cookie; when the pod
//! goes, or its namespace leaves the mesh, both must go. Everything lives
//! in the namespace made here (only `lo`); it is removed afterwards.
//!
//! Needs root and the built programs (`cargo xtask build-ebpf`, or
//! `EGRET_BPF_OBJECT=PATH`). It fails, never skips, when it cannot run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use egret::config::snapshot::Snapshot;
use egret::dns::{DnsProxy, Resolver};
use egret::kernel::cgroup2_root;
use egret::kube::pods::{sync, AdoptionReport};
use egret::proxy::ProxyContext;
use egret::workload::{Services, WorkloadManager};
use egret_common::{DNS_PORT, OUTBOUND_PORT};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

#[path = "support/fake_pod.rs"]
mod fake_pod;
#[path = "support/test_kernel.rs"]
mod test_kernel;

use fake_pod::FakePod;

fn load_kernel() -> test_kernel::TestKernel {
    test_kernel::load_kernel("pod_adoption")
}

fn snapshot(bookinfo_ambient: bool) -> Snapshot {
    let mode = if bookinfo_ambient { "ambient" } else { "none" };
    let text = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bookinfo\n  labels:\n    istio.io/dataplane-mode: {mode}\n");
    let objects: Vec<_> = egret::config::parse::parse_text(&text, "ns.yaml", "default")
        .unwrap()
        .into_iter()
        .flat_map(|d| d.objects)
        .map(Result::unwrap)
        .collect();
    egret::config::compile(&objects, &HashMap::new())
}

fn pod(uid: &str) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "productpage-v1-abc", "namespace": "bookinfo", "uid": uid},
            "spec": {"nodeName": "node-a", "serviceAccountName": "bookinfo-productpage", "containers": []},
            "status": {"phase": "Running", "podIP": "10.244.0.9"}
        }))
        .unwrap(),
    )
}

async fn sync_now(
    manager: &Arc<WorkloadManager>,
    pods: Vec<Arc<Pod>>,
    snapshot: Snapshot,
) -> AdoptionReport {
    let m = manager.clone();
    tokio::task::spawn_blocking(move || {
        sync(
            &pods,
            &snapshot,
            Path::new("/proc"),
            &m,
            &mut HashMap::new(),
        )
    })
    .await
    .unwrap()
}

/// Polls `ok` for up to two seconds.
fn eventually(what: &str, ok: impl Fn() -> bool) {
    for _ in 0..100 {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_is_adopted_enrolled_and_released() {
    let test_kernel = load_kernel();
    let kernel = test_kernel.kernel.clone();
    let uid = format!("6f1e2d3c-4b5a-4978-8a6b-{:012x}", std::process::id());
    let fake = FakePod::start(&uid, "pa");
    fake.wait_ready();
    let cookie = fake.cookie();

    let (_tx, snapshots) = watch::channel(Arc::new(snapshot(true)));
    let resolver = Resolver::new(vec!["127.0.0.1:53".parse().unwrap()]).unwrap();
    let proxy = Arc::new(ProxyContext::new(
        snapshots.clone(),
        Arc::new(egret::app::resolver::UpstreamResolver(Arc::new(resolver))),
        "cluster.local",
    ));
    let state = tempfile::tempdir().unwrap();
    let manager = Arc::new(WorkloadManager::new(
        Services {
            kernel: kernel.clone(),
            dns: DnsProxy::new(snapshots.clone(), Vec::new()),
            proxy,
            snapshots,
        },
        None,
        cgroup2_root().unwrap(),
        state.path().to_path_buf(),
        Vec::new(),
    ));
    let enrolled =
        |k: &egret::kernel::Kernel| k.enrolled().unwrap().iter().any(|(c, _)| *c == cookie);

    // The pod runs in an ambient namespace: adopted.
    let report = sync_now(&manager, vec![pod(&uid)], snapshot(true)).await;
    assert_eq!(report.adopted, std::slice::from_ref(&uid), "{report:?}");
    assert!(enrolled(&kernel), "ENROLLED holds the pod's netns cookie");
    assert!(
        fake.listening(OUTBOUND_PORT),
        "outbound listener in the pod"
    );
    assert!(fake.listening(DNS_PORT), "DNS listener in the pod");
    let list = manager.list();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].service_account.as_str()),
        ("productpage-v1-abc", "bookinfo-productpage")
    );
    assert_eq!(list[0].netns_cookie, cookie);
    // A second pass changes nothing.
    let again = sync_now(&manager, vec![pod(&uid)], snapshot(true)).await;
    assert_eq!(again, AdoptionReport::default());

    // The pod goes: listeners closed, cookie unenrolled; the namespace is
    // the runtime's and stays.
    let report = sync_now(&manager, Vec::new(), snapshot(true)).await;
    assert_eq!(report.released, std::slice::from_ref(&uid));
    assert!(!enrolled(&kernel));
    eventually("outbound listener closed", || {
        !fake.listening(OUTBOUND_PORT)
    });
    assert!(fake.path().exists());

    // Back, then its namespace leaves the mesh: released again.
    sync_now(&manager, vec![pod(&uid)], snapshot(true)).await;
    assert!(enrolled(&kernel));
    let report = sync_now(&manager, vec![pod(&uid)], snapshot(false)).await;
    assert_eq!(report.released, std::slice::from_ref(&uid));
    assert!(!enrolled(&kernel));
    eventually("listeners closed after the namespace left the mesh", || {
        !fake.listening(OUTBOUND_PORT) && !fake.listening(DNS_PORT)
    });
    assert!(manager.list().is_empty());
}

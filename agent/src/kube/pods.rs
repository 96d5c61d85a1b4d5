//! This node's pods: a watch of the pods scheduled here; a pod is adopted
//! when it runs, has an address, its namespace is ambient and it did not
//! opt out; it is released when it goes or stops qualifying.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::procfs::find_pod_netns;
use crate::config::snapshot::Snapshot;
use crate::workload::{PodWorkload, WorkloadManager};

/// Pod label that takes one pod out of an ambient namespace.
const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// How often pods whose namespace was not found yet are looked for again
/// (the sandbox may start after the pod is Running in the API).
const RETRY: Duration = Duration::from_secs(5);

/// What the pod watch needs.
#[derive(Clone, Debug)]
pub struct PodOptions {
    /// This node's name (`spec.nodeName` of its pods).
    pub node_name: String,
    /// The host's `/proc`.
    pub proc_root: PathBuf,
}

/// A pod that should be adopted, before its namespace is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedPod {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.serviceAccountName`, `default` when unset.
    pub service_account: String,
    /// `status.podIPs` (or `status.podIP`): one address, or one per family
    /// on a dual-stack cluster; the first is the primary.
    pub ips: Vec<IpAddr>,
}

/// Whether `pod` is to be a mesh workload under `snapshot`, and as what.
pub fn wanted(pod: &Pod, snapshot: &Snapshot) -> Option<WantedPod> {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone()?;
    let uid = meta.uid.clone()?;
    let spec = pod.spec.as_ref()?;
    let status = pod.status.as_ref()?;
    let opted_out = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(DATAPLANE_MODE))
        .is_some_and(|m| m == "none");
    let running = status.phase.as_deref() == Some("Running");
    let host_network = spec.host_network.unwrap_or(false);
    if opted_out || !running || host_network || meta.deletion_timestamp.is_some() {
        return None;
    }
    if !snapshot.is_ambient(&namespace) {
        return None;
    }
    let ips = pod_ips(status);
    if ips.is_empty() {
        return None;
    }
    Some(WantedPod {
        uid,
        name: meta.name.clone().unwrap_or_default(),
        namespace,
        service_account: spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        ips,
    })
}

/// `status.podIPs` in order (the API keeps `podIP` equal to the first),
/// falling back to `status.podIP` alone; each address once.
fn pod_ips(status: &k8s_openapi::api::core::v1::PodStatus) -> Vec<IpAddr> {
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in status.pod_ip.as_deref().into_iter().chain(listed) {
        if let Ok(ip) = ip.parse() {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AdoptionReport {
    /// Pods adopted in this pass.
    pub adopted: Vec<String>,
    /// Pods released in this pass.
    pub released: Vec<String>,
    /// Wanted pods not adopted yet (no namespace found, or adoption failed).
    pub pending: Vec<String>,
}

/// Brings the adopted pods in line with `pods` under `snapshot`. Blocking
/// (reads /proc, enters namespaces).
pub fn sync(
    pods: &[Arc<Pod>],
    snapshot: &Snapshot,
    proc_root: &Path,
    manager: &WorkloadManager,
    failures: &mut HashMap<String, String>,
) -> AdoptionReport {
    let wanted: HashMap<String, WantedPod> = pods
        .iter()
        .filter_map(|p| wanted(p, snapshot))
        .map(|w| (w.uid.clone(), w))
        .collect();
    let adopted: HashSet<String> = manager.pod_uids().into_iter().collect();
    let mut report = AdoptionReport::default();
    for uid in adopted.iter().filter(|u| !wanted.contains_key(*u)) {
        if manager.release_pod(uid) {
            report.released.push(uid.clone());
        }
    }
    for (uid, pod) in wanted.iter().filter(|(u, _)| !adopted.contains(*u)) {
        let result = match find_pod_netns(proc_root, uid) {
            Ok(Some(ns)) => manager
                .adopt(&PodWorkload {
                    uid: uid.clone(),
                    name: pod.name.clone(),
                    namespace: pod.namespace.clone(),
                    service_account: pod.service_account.clone(),
                    ip: pod.ips[0],
                    other_ips: pod.ips[1..].to_vec(),
                    netns: ns.path,
                })
                .map_err(|e| e.to_string()),
            Ok(None) => Err("no process of the pod in its own network namespace yet".into()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                failures.remove(uid);
                report.adopted.push(uid.clone());
            }
            Err(reason) => {
                // Said once per cause; the pass repeats every few seconds.
                if failures.get(uid) != Some(&reason) {
                    tracing::warn!(pod = %pod.name, namespace = %pod.namespace, uid = %uid, "pod not adopted yet: {reason}");
                    failures.insert(uid.clone(), reason);
                }
                report.pending.push(uid.clone());
            }
        }
    }
    failures.retain(|uid, _| wanted.contains_key(uid));
    report
}

/// Watches this node's pods and keeps `manager`'s adopted pods in line
/// with them and with the namespaces' labels in `snapshots`.
pub fn spawn(
    client: Client,
    options: PodOptions,
    manager: Arc<WorkloadManager>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
) -> JoinHandle<()> {
    let api: Api<Pod> = Api::all(client);
    let writer = reflector::store::Writer::default();
    let store: Store<Pod> = writer.as_reader();
    let changed = Arc::new(Notify::new());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", options.node_name));
    let watch_task = {
        let changed = changed.clone();
        tokio::spawn(async move {
            let stream = watcher(api, config).default_backoff().reflect(writer);
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(
                        watcher::Event::Apply(_)
                        | watcher::Event::Delete(_)
                        | watcher::Event::InitDone,
                    ) => changed.notify_one(),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
                }
            }
        })
    };
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_err() {
            return;
        }
        let mut failures = HashMap::new();
        // Kernel enrollments an earlier agent left for pods that are gone
        // are dropped once, after the first pass that adopted every pod
        // (never while one is pending: that could unenroll a live pod).
        let mut stale_enrollments = true;
        loop {
            let pods = store.state();
            let snapshot = snapshots.borrow_and_update().clone();
            let m = manager.clone();
            let proc_root = options.proc_root.clone();
            let mut f = std::mem::take(&mut failures);
            let joined = tokio::task::spawn_blocking(move || {
                let report = sync(&pods, &snapshot, &proc_root, &m, &mut f);
                (report, f)
            })
            .await;
            let Ok((report, f)) = joined else { break };
            failures = f;
            let retry = !report.pending.is_empty();
            if stale_enrollments && !retry {
                stale_enrollments = false;
                let m = manager.clone();
                let _ = tokio::task::spawn_blocking(move || m.forget_unknown_enrollments()).await;
            }
            tokio::select! {
                _ = changed.notified() => {}
                r = snapshots.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(RETRY), if retry => {}
            }
        }
        watch_task.abort();
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::manifests::objects;

    fn pod(ns: &str, labels: serde_json::Value, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "productpage-v1-1", "namespace": ns, "uid": "u-1", "labels": labels},
            "spec": {"nodeName": "node-a", "serviceAccountName": "bookinfo-productpage", "containers": []},
            "status": {"phase": phase, "podIP": "10.244.1.7"}
        }))
        .unwrap()
    }

    fn snapshot(bookinfo_ambient: bool) -> Snapshot {
        let label = if bookinfo_ambient { "ambient" } else { "none" };
        let text = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bookinfo\n  labels:\n    istio.io/dataplane-mode: {label}\n");
        crate::config::compile(&objects(&text), &Default::default())
    }

    #[test]
    fn running_pod_of_ambient_namespace_is_wanted() {
        let w = wanted(
            &pod("bookinfo", serde_json::json!({}), "Running"),
            &snapshot(true),
        )
        .unwrap();
        assert_eq!(
            w,
            WantedPod {
                uid: "u-1".into(),
                name: "productpage-v1-1".into(),
                namespace: "bookinfo".into(),
                service_account: "bookinfo-productpage".into(),
                ips: vec!["10.244.1.7".parse().unwrap()],
            }
        );
    }

    #[test]
    fn dual_stack_pods_have_both_addresses() {
        let mut p = pod("bookinfo", serde_json::json!({}), "Running");
        let status = p.status.as_mut().unwrap();
        status.pod_ips = Some(vec![
            serde_json::from_value(serde_json::json!({"ip": "10.244.1.7"})).unwrap(),
            serde_json::from_value(serde_json::json!({"ip": "fd00:10:244:1::7"})).unwrap(),
        ]);
        let w = wanted(&p, &snapshot(true)).unwrap();
        let ips: Vec<String> = w.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.244.1.7", "fd00:10:244:1::7"]);
        // Only podIPs (an IPv6-first pod as a client may see it).
        let status = p.status.as_mut().unwrap();
        status.pod_ip = None;
        status.pod_ips.as_mut().unwrap().reverse();
        let w = wanted(&p, &snapshot(true)).unwrap();
        assert_eq!(w.ips[0].to_string(), "fd00:10:244:1::7");
        assert_eq!(w.ips.len(), 2);
        // No address yet: not wanted.
        p.status.as_mut().unwrap().pod_ips = None;
        assert_eq!(wanted(&p, &snapshot(true)), None);
    }

    #[test]
    fn pods_that_are_not_wanted() {
        let s = snapshot(true);
        let opted_out = pod(
            "bookinfo",
            serde_json::json!({"istio.io/dataplane-mode": "none"}),
            "Running",
        );
        assert_eq!(wanted(&opted_out, &s), None);
        assert_eq!(
            wanted(&pod("bookinfo", serde_json::json!({}), "Pending"), &s),
            None
        );
        assert_eq!(
            wanted(&pod("other", serde_json::json!({}), "Running"), &s),
            None
        );
        let not_ambient = snapshot(false);
        assert_eq!(
            wanted(
                &pod("bookinfo", serde_json::json!({}), "Running"),
                &not_ambient
            ),
            None
        );
        let mut host = pod("bookinfo", serde_json::json!({}), "Running");
        host.spec.as_mut().unwrap().host_network = Some(true);
        assert_eq!(wanted(&host, &s), None);
    }
}

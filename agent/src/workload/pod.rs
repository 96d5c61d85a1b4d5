//! Kubernetes pods as workloads: the agent adopts the namespace the
//! container runtime made (no namespace, veth or cgroup of its own), binds
//! its listeners inside it, enrolls it by its namespace's label, and
//! removes only what it added when the pod goes.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::enrollment::wanted_flags;
use super::error::WorkloadError;
use super::listeners::bind_in;
use super::manager::{Origin, Running, WorkloadManager};
use crate::identity::WorkloadInfo;

/// A pod running on this node, and where its network namespace is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWorkload {
    /// `metadata.uid`: what the pod is known by here.
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// `status.podIP` (the first of `status.podIPs`).
    pub ip: IpAddr,
    /// The rest of `status.podIPs`: a dual-stack pod's address of the
    /// other family.
    pub other_ips: Vec<IpAddr>,
    /// A path to its network namespace (`/proc/<pid>/ns/net`).
    pub netns: PathBuf,
}

impl WorkloadManager {
    /// Adopts `pod`: listeners inside its namespace, kernel enrollment when
    /// its namespace is ambient. Adopting a pod already adopted does
    /// nothing. Blocking (enters the namespace on a helper thread).
    pub fn adopt(&self, pod: &PodWorkload) -> Result<(), WorkloadError> {
        if self.pod_uids().contains(&pod.uid) {
            return Ok(());
        }
        let sockets = bind_in(&pod.netns)?;
        let info = Arc::new(WorkloadInfo {
            name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            service_account: pod.service_account.clone(),
            ip: pod.ip,
            netns_cookie: sockets.netns_cookie,
        });
        let tasks = self.spawn_listeners(&info, &pod.other_ips, sockets)?;
        let enrolled = wanted_flags(&self.services.snapshots.borrow(), &pod.namespace);
        if let Some(flags) = enrolled {
            if let Err(e) = self.services.kernel.enroll(info.netns_cookie, flags) {
                for t in &tasks {
                    t.abort();
                }
                return Err(e.into());
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::info!(pod = %pod.name, namespace = %pod.namespace, uid = %pod.uid, ip = %pod.ip, other_ips = ?pod.other_ips, netns_cookie = info.netns_cookie, enrolled = enrolled.is_some(), "pod adopted");
        self.lock().insert(
            id,
            Running {
                info,
                origin: Origin::Pod {
                    uid: pod.uid.clone(),
                },
                tasks,
                enrolled,
                adopted: false,
            },
        );
        Ok(())
    }

    /// Lets go of pod `uid`: listeners closed, kernel entry removed; the
    /// pod's namespace is left to its runtime. Whether it was adopted.
    pub fn release_pod(&self, uid: &str) -> bool {
        let running = {
            let mut workloads = self.lock();
            let id = workloads
                .iter()
                .find(|(_, r)| matches!(&r.origin, Origin::Pod { uid: u } if u == uid))
                .map(|(id, _)| *id);
            id.and_then(|id| workloads.remove(&id))
        };
        match running {
            Some(r) => {
                self.teardown(r);
                true
            }
            None => false,
        }
    }

    /// UIDs of the adopted pods.
    pub fn pod_uids(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter_map(|r| match &r.origin {
                Origin::Pod { uid } => Some(uid.clone()),
                Origin::Created { .. } => None,
            })
            .collect()
    }
}

//! Taking over the `egret exec` workloads an earlier agent left running
//! (after a crash, a restart or an upgrade): their listeners come back
//! inside the same namespaces and their kernel enrollment follows the
//! config in force, without re-creating them. Workloads whose command ended
//! while no agent ran are removed.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cgroup::WorkloadCgroup;
use super::enrollment::{mode_name, wanted_flags};
use super::listeners::bind_in;
use super::manager::{Origin, Running, WorkloadManager};
use super::netns::NamedNetns;
use super::record::{remove_leftovers, WorkloadRecord};
use crate::identity::WorkloadInfo;

/// Why a recorded workload was not taken over.
#[derive(Debug, thiserror::Error)]
enum Gone {
    #[error("its network namespace {0} no longer exists")]
    NoNamespace(String),
    #[error("its command has ended (cgroup {0} is empty)")]
    Ended(String),
    #[error("{0} is another namespace than the one it was made with")]
    OtherNamespace(String),
}

impl WorkloadManager {
    /// Takes over every recorded workload; returns how many run on. Call
    /// before the kernel programs are swapped in and before new workloads
    /// are made. Blocking.
    pub fn take_over_recorded(&self) -> usize {
        let mut taken = 0;
        let mut max_id = 0;
        for (record, dir) in WorkloadRecord::load_all(self.state_dir()) {
            max_id = max_id.max(record.id);
            match self.take_over(&record, &dir) {
                Ok(()) => taken += 1,
                Err(gone) => {
                    tracing::info!(workload = %record.name, namespace = %record.namespace, reason = %gone, "workload of an earlier agent removed");
                    self.discard(&record, &dir);
                }
            }
        }
        self.next_id.fetch_max(max_id + 1, Ordering::Relaxed);
        taken
    }

    /// Removes taken-over workloads whose command has ended (no control
    /// connection will say so: the one that made them is gone). Blocking.
    pub fn reap_ended(&self) {
        let ended: Vec<Running> = {
            let mut workloads = self.lock();
            let ids: Vec<u64> = workloads
                .iter()
                .filter(|(_, r)| r.adopted)
                .filter(|(_, r)| match &r.origin {
                    Origin::Created { cgroup, .. } => !has_processes(&cgroup.path),
                    Origin::Pod { .. } => false,
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| workloads.remove(id)).collect()
        };
        for running in ended {
            tracing::info!(workload = %running.info.name, "command of a taken-over workload ended");
            self.teardown(running);
        }
    }

    fn take_over(&self, record: &WorkloadRecord, dir: &Path) -> Result<(), Gone> {
        let netns = NamedNetns {
            name: record.netns.clone(),
        };
        let path = netns.path();
        if !path.exists() {
            return Err(Gone::NoNamespace(record.netns.clone()));
        }
        if !has_processes(&record.cgroup) {
            return Err(Gone::Ended(record.cgroup.display().to_string()));
        }
        if let Some(podnet) = self.podnet() {
            podnet.reserve(record.ip);
        }
        let info = Arc::new(WorkloadInfo {
            name: record.name.clone(),
            namespace: record.namespace.clone(),
            service_account: record.service_account.clone(),
            ip: record.ip.into(),
            netns_cookie: record.netns_cookie,
        });
        // Fail closed: whatever happens to the listeners below, the kernel
        // goes on enforcing for this namespace as the config says.
        let enrolled = wanted_flags(&self.services.snapshots.borrow(), &record.namespace);
        let kernel = match enrolled {
            Some(flags) => self.services.kernel.enroll(record.netns_cookie, flags),
            None => self
                .services
                .kernel
                .unenroll(record.netns_cookie)
                .map(|_| ()),
        };
        if let Err(e) = kernel {
            tracing::error!(workload = %record.name, error = %e, "could not update the enrollment of a taken-over workload; the kernel keeps the earlier one");
        }
        let tasks = match bind_in(&path).and_then(|sockets| {
            if sockets.netns_cookie != record.netns_cookie {
                return Ok(None);
            }
            self.spawn_listeners(&info, &[], sockets).map(Some)
        }) {
            Ok(Some(tasks)) => tasks,
            Ok(None) => return Err(Gone::OtherNamespace(path.display().to_string())),
            Err(e) => {
                // Kept (and enforced) without listeners: its captured
                // connects and DNS are refused rather than let out.
                tracing::error!(workload = %record.name, error = %e, "listeners of a taken-over workload could not be bound; its captured traffic is refused");
                Vec::new()
            }
        };
        tracing::info!(workload = %record.name, namespace = %record.namespace, netns_cookie = record.netns_cookie, outbound = mode_name(enrolled), "workload taken over from an earlier agent");
        self.insert(
            record.id,
            Running {
                info,
                origin: Origin::Created {
                    netns,
                    cgroup: WorkloadCgroup {
                        path: record.cgroup.clone(),
                    },
                    dir: dir.to_path_buf(),
                },
                tasks,
                enrolled,
                adopted: true,
            },
        );
        Ok(())
    }

    /// Removes what is left of a workload that is not taken over.
    fn discard(&self, record: &WorkloadRecord, dir: &Path) {
        let _ = self.services.kernel.unenroll(record.netns_cookie);
        remove_leftovers(record, dir);
    }
}

/// Whether a cgroup still has processes (a missing cgroup has none).
fn has_processes(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
}

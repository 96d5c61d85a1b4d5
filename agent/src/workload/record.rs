//! What the agent writes down about each `egret exec` workload, so that a
//! restarted (or upgraded) agent finds the workloads still running and
//! takes them over: `<state>/workloads/<id>/workload.json`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::WorkloadError;

/// File name of a record inside the workload's folder.
const RECORD: &str = "workload.json";

/// One created workload, as written at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub id: u64,
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub ip: Ipv4Addr,
    /// Name of its network namespace (`/run/netns/<name>`).
    pub netns: String,
    /// Its cgroup folder.
    pub cgroup: PathBuf,
    /// `SO_NETNS_COOKIE` of its namespace when it was made: a namespace of
    /// the same name with another cookie is not this workload's.
    pub netns_cookie: u64,
}

/// `<state>/workloads`: one folder per workload id.
pub fn workloads_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("workloads")
}

impl WorkloadRecord {
    /// Writes the record into `dir` (atomically: a crash leaves the old
    /// file or the new one).
    pub fn save(&self, dir: &Path) -> Result<(), WorkloadError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| WorkloadError::Io {
            what: "encode workload record".into(),
            source: std::io::Error::other(e),
        })?;
        let tmp = dir.join(format!(".{RECORD}.tmp"));
        std::fs::write(&tmp, text)
            .map_err(WorkloadError::io(format!("write {}", tmp.display())))?;
        let path = dir.join(RECORD);
        std::fs::rename(&tmp, &path)
            .map_err(WorkloadError::io(format!("rename to {}", path.display())))
    }

    /// Every record under `<state>/workloads`, with the folder it is in.
    /// Unreadable records are reported and skipped.
    pub fn load_all(state_dir: &Path) -> Vec<(WorkloadRecord, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(workloads_dir(state_dir)) else {
            return Vec::new();
        };
        let mut all = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let path = dir.join(RECORD);
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) => all.push((record, dir)),
                Err(e) => {
                    tracing::warn!(record = %path.display(), error = %e, "workload record unreadable; left alone")
                }
            }
        }
        all.sort_by_key(|(r, _): &(WorkloadRecord, PathBuf)| r.id);
        all
    }
}

/// Removes what a recorded workload leaves on the host: its processes (the
/// cgroup is killed first), its network namespace and its folder.
pub fn remove_leftovers(record: &WorkloadRecord, dir: &Path) {
    super::cgroup::WorkloadCgroup {
        path: record.cgroup.clone(),
    }
    .remove();
    let netns = super::netns::NamedNetns {
        name: record.netns.clone(),
    };
    if netns.path().exists() {
        netns.remove();
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let state = tempfile::tempdir().unwrap();
        let dir = workloads_dir(state.path()).join("3");
        std::fs::create_dir_all(&dir).unwrap();
        let record = WorkloadRecord {
            id: 3,
            name: "curl-3".into(),
            namespace: "bookinfo".into(),
            service_account: "productpage".into(),
            ip: Ipv4Addr::new(10, 238, 0, 2),
            netns: "egret-1-3".into(),
            cgroup: "/sys/fs/cgroup/egret/egret-1-3".into(),
            netns_cookie: 4096,
        };
        record.save(&dir).unwrap();
        let bad = workloads_dir(state.path()).join("4");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join(RECORD), b"{not json").unwrap();
        let all = WorkloadRecord::load_all(state.path());
        assert_eq!(all, vec![(record, dir)]);
    }
}

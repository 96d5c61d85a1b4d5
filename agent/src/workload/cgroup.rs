//! A workload's own cgroup (v2), under `<cgroup2 root>/egret/`.

use std::path::{Path, PathBuf};

use super::error::WorkloadError;

/// A cgroup created for one workload; removed (and emptied) on `remove`.
#[derive(Debug)]
pub struct WorkloadCgroup {
    pub path: PathBuf,
}

impl WorkloadCgroup {
    /// Creates `<root>/egret/<name>`.
    pub fn create(root: &Path, name: &str) -> Result<Self, WorkloadError> {
        let path = root.join("egret").join(name);
        std::fs::create_dir_all(&path).map_err(WorkloadError::io(format!(
            "create cgroup {}",
            path.display()
        )))?;
        Ok(WorkloadCgroup { path })
    }

    /// Kills whatever the workload left running (`cgroup.kill`, Linux 5.14)
    /// and removes the cgroup.
    pub fn remove(&self) {
        let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        }
        // The kill is asynchronous: give the processes a moment to go.
        for _ in 0..50 {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => {
                    tracing::warn!(cgroup = %self.path.display(), error = %e, "could not remove cgroup");
                    return;
                }
            }
        }
        tracing::warn!(cgroup = %self.path.display(), "cgroup still busy; left in place");
    }
}

//! Network namespaces: creating a workload's, and running code inside one.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use super::error::WorkloadError;
use super::ipcmd::ip;

/// A named network namespace (`/run/netns/<name>`), deleted on `remove`.
#[derive(Debug)]
pub struct NamedNetns {
    pub name: String,
}

impl NamedNetns {
    /// Creates `/run/netns/<name>` with its loopback up.
    pub fn create(name: &str) -> Result<Self, WorkloadError> {
        ip(&["netns", "add", name])?;
        let ns = NamedNetns {
            name: name.to_string(),
        };
        if let Err(e) = ip(&["-n", name, "link", "set", "lo", "up"]) {
            ns.remove();
            return Err(e);
        }
        Ok(ns)
    }

    /// Path of the namespace's bind mount.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Deletes the namespace; its veth ends go with it. Errors are logged:
    /// teardown carries on with the rest.
    pub fn remove(&self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete network namespace");
        }
    }
}

/// Runs `f` on a fresh thread that has entered the network namespace at
/// `path`. Sockets `f` creates belong to that namespace; no other thread of
/// the agent changes namespace.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, WorkloadError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, WorkloadError> + Send + 'static,
{
    let file = File::open(path).map_err(WorkloadError::io(format!("open {}", path.display())))?;
    let what = format!("enter network namespace {}", path.display());
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| WorkloadError::io(what)(std::io::Error::from(e)))?;
        f()
    })
    .join()
    .unwrap_or_else(|_| {
        Err(WorkloadError::Io {
            what: "namespace thread panicked".into(),
            source: std::io::Error::other("panic"),
        })
    })
}

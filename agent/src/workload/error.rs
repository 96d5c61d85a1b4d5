//! Errors of workload setup and teardown.

use std::io;

/// What can go wrong while giving a workload its network namespace, cgroup
/// and listeners.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `{command}`: {source} (is iproute2 installed?)")]
    Spawn { command: String, source: io::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("kernel: {0}")]
    Kernel(#[from] crate::kernel::KernelError),
    #[error("pod network {cidr} has no free address left")]
    AddressesExhausted { cidr: String },
}

impl WorkloadError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> WorkloadError {
        let what = what.into();
        move |source| WorkloadError::Io { what, source }
    }
}

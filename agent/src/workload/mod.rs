//! Workloads on this node: their network namespaces, cgroups, enrollment and
//! the agent's listeners inside them.

pub mod cgroup;
pub mod error;
pub mod identity;
mod ipcmd;
pub mod listeners;
pub mod manager;
pub mod netns;
pub mod podnet;

pub use error::WorkloadError;
pub use manager::{CreatedWorkload, Services, WorkloadManager, WorkloadSummary};

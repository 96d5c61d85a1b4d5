//! Workloads on this node: their network namespaces, cgroups, enrollment and
//! the agent's listeners inside them.

pub mod cgroup;
pub mod error;
pub mod identity;
mod ipcmd;
pub mod netns;
pub mod podnet;

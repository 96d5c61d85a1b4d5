//! Workloads on this node: their network namespaces, cgroups, enrollment and
//! the agent's listeners inside them; `egret exec` workloads are created
//! ([`manager`]), Kubernetes pods adopted ([`pod`]).

pub mod adopt;
pub mod caps;
pub mod cgroup;
pub mod enrollment;
pub mod error;
mod ipcmd;
pub mod listeners;
pub mod manager;
pub mod netns;
pub mod pod;
pub mod podnet;
pub mod record;
pub mod source;

pub use error::WorkloadError;
pub use manager::{CreatedWorkload, Services, WorkloadManager, WorkloadSummary};
pub use pod::PodWorkload;

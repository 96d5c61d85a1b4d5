//! Messages on the control socket: one JSON object per line each way.

use serde::{Deserialize, Serialize};

pub use crate::verdicts::MonitorEvent;
use crate::workload::{CreatedWorkload, WorkloadSummary};

/// Name of the control socket inside the agent's state folder.
pub const SOCKET_NAME: &str = "agent.sock";

/// A request from the CLI to the agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Make a workload; it lives as long as this control connection.
    CreateWorkload {
        namespace: String,
        service_account: String,
        name: Option<String>,
    },
    /// Tear a workload of this connection down now and answer when it is
    /// gone (closing the connection does the same, without the answer).
    ReleaseWorkload { id: u64 },
    /// What the agent has in force right now.
    Status,
    /// Only the generation of the config in force: cheap to ask often (a
    /// full status lists every service and kernel entry).
    Generation,
    /// Stream kernel verdicts (`Response::Event` lines) until the
    /// connection closes: denials, and redirects when asked.
    Monitor {
        #[serde(default)]
        redirects: bool,
    },
}

/// The agent's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Workload(CreatedWorkload),
    /// The workload is gone: namespace, cgroup and kernel entries removed.
    Released {
        id: u64,
    },
    Status(AgentStatus),
    Generation {
        generation: u64,
    },
    /// One kernel verdict of a `Monitor` stream.
    Event(MonitorEvent),
    Error {
        message: String,
    },
}

/// The agent's state in force, for `egret status` and tests.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Generation of the config snapshot in force.
    pub generation: u64,
    /// Hosts with their VIPs, `host=vip,vip`.
    pub services: Vec<String>,
    /// Entries of the kernel SERVICES map, `addr port` (port 0 = all).
    pub kernel_services: Vec<String>,
    /// Entries of the kernel SERVICE_RANGES map, `addr/prefix`.
    #[serde(default)]
    pub kernel_service_ranges: Vec<String>,
    /// Entries of the kernel ENROLLED map: (netns cookie, flags).
    pub kernel_enrolled: Vec<(u64, u32)>,
    pub workloads: Vec<WorkloadSummary>,
    /// Kernel verdict counters by name.
    pub kernel_stats: Vec<(String, u64)>,
}

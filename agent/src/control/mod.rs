//! The agent's control socket (`<state dir>/agent.sock`): how `egret exec`
//! and `egret status` talk to a running agent.

pub mod client;
pub mod protocol;
pub mod server;

pub mod peer;

pub use client::{ControlClient, ControlError};
pub use protocol::{AgentStatus, MonitorEvent, Request, Response};

use std::sync::Arc;

use crate::identity::WorkloadInfo;
use crate::kernel::events::KernelEvent;

/// A `Monitor` session's feed: kernel events, and who a netns cookie is.
pub struct Subscription {
    /// Every kernel event from now on.
    pub events: tokio::sync::broadcast::Receiver<KernelEvent>,
    /// The workload of a netns cookie.
    pub workload: Box<dyn Fn(u64) -> Option<Arc<WorkloadInfo>> + Send>,
}

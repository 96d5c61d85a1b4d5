//! The agent's control socket (`<state dir>/agent.sock`): how `egret exec`
//! and `egret status` talk to a running agent.

pub mod client;
pub mod protocol;
pub mod server;

pub use client::{ControlClient, ControlError};
pub use protocol::{AgentStatus, Request, Response};

//! The agent's control socket: how `egret exec`, `get` and friends talk to a
//! running agent.

//! The agent's control socket (`<state dir>/agent.sock`): how `egret exec`
//! and `egret status` talk to a running agent.

//! Test support shared by the agent's unit tests and its integration suites
//! (`agent/tests/`, through the `testing` feature; ztunnel's `test_helpers`):
//! the walkthrough's manifests ([`manifests`]), compiled services and
//! snapshots ([`fixtures`]), resolver stubs
//! ([`resolver`]), loopback upstream servers ([`upstream`]), the
//! workload's end of a captured connection ([`client`]), log output
//! captured in memory ([`log`]) and the waypoint controller's inputs
//! ([`waypoints`]). Never part of a release build.

pub mod client;
pub mod fixtures;
pub mod log;
pub mod manifests;
pub mod resolver;
pub mod upstream;
pub mod waypoints;

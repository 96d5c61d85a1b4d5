//! Test support shared by the agent's unit tests and its integration suites
//! (`agent/tests/`, through the `testing` feature; ztunnel's `test_helpers`):
//! compiled services and snapshots ([`fixtures`]), resolver stubs
//! ([`resolver`]), loopback upstream servers ([`upstream`]) and the
//! workload's end of a captured connection ([`client`]). Never part of a
//! release build.

pub mod client;
pub mod fixtures;
pub mod resolver;
pub mod upstream;

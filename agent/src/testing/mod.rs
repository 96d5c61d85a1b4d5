//! Test support shared by the agent's unit tests and its integration suites
//! (`agent/tests/`, through the `testing` feature; ztunnel's `test_helpers`):
//! compiled services and snapshots ([`fixtures`]), resolver stubs
//! ([`resolver`]) and loopback upstream servers ([`upstream`]). Never part
//! of a release build.

pub mod fixtures;
pub mod resolver;
pub mod upstream;

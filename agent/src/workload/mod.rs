//! Workloads on this node: their network namespaces, enrollment and listeners.

pub mod identity;

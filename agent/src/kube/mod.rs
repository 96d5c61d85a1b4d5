//! Kubernetes mode: the cluster's API as the config source (the same kinds
//! and the same checks as a folder of manifests), the status writer
//! (ServiceEntry addresses and waypoint binding, Gateway programmed) and
//! the discovery of this node's pods.
//!
//! [`client`] builds the API client; [`source`] watches the kinds and
//! publishes snapshots through [`reconcile`] (parse with [`convert`],
//! addresses from status with [`addresses`], patches from
//! [`status_patch`], writer elected by [`lease`]); [`pods`] adopts the
//! node's ambient pods found through [`procfs`].

pub mod addresses;
pub mod client;
pub mod cluster;
pub mod cluster_ca;
pub mod convert;
pub mod error;
pub mod lease;
pub mod pods;
pub mod procfs;
pub mod reconcile;
pub mod resources;
pub mod source;
pub mod status_patch;
pub mod unlisted;
pub mod waypoints;

pub use error::KubeError;
pub use source::{start, SourceOptions, StatusWriterMode, WaypointMode};

#[cfg(test)]
mod deploy_tests;

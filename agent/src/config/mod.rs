//! Cluster config: manifests (a folder, or the Kubernetes API) compiled into
//! one immutable [`snapshot::Snapshot`].

pub mod snapshot;

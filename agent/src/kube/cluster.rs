//! Joining the cluster as a node agent: the API client, the cluster CA's
//! identities, the config source, and (when waypoints run as Deployments)
//! the waypoint controller the elected agent runs.

use std::path::Path;
use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;

use super::cluster_ca::{self, CaSecrets};
use super::error::KubeError;
use super::source::{SourceOptions, StatusWriterMode, WaypointMode};
use super::waypoints::{ControllerConfig, WaypointTemplate};
use crate::config::snapshot::Snapshot;
use crate::identity::{CertSource, IdentityStore};

/// How a node agent takes part in the cluster, besides its own node.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Where the cluster CA is.
    pub ca: CaSecrets,
    /// How waypoint Deployments are made; `None`: node agents serve
    /// waypoints themselves.
    pub waypoints: Option<WaypointTemplate>,
}

/// What Kubernetes mode runs on.
pub struct Cluster {
    /// The API client.
    pub client: Client,
    /// Snapshots of the config the API holds.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Certificates signed by the cluster CA.
    pub identities: Arc<IdentityStore>,
}

/// Connects, loads (or creates) the cluster CA, and starts the config
/// source (with the waypoint controller when waypoints are deployed).
pub async fn join(
    kubeconfig: Option<&Path>,
    writer: StatusWriterMode,
    options: &ClusterOptions,
    trust_domain: &str,
    state_dir: &Path,
) -> Result<Cluster, KubeError> {
    let client = super::client::connect(kubeconfig).await?;
    let signer = Arc::new(cluster_ca::load(&client, &options.ca).await?);
    let identities = Arc::new(IdentityStore::new(
        trust_domain,
        CertSource::Ca(signer.clone()),
    )?);
    let waypoints = match &options.waypoints {
        Some(template) => WaypointMode::Deployed(Some(ControllerConfig {
            template: template.clone(),
            signer,
        })),
        None => WaypointMode::Local,
    };
    let source = SourceOptions {
        writer,
        waypoints,
        state_dir: Some(state_dir.to_path_buf()),
    };
    let snapshots = super::start(client.clone(), source).await;
    Ok(Cluster {
        client,
        snapshots,
        identities,
    })
}

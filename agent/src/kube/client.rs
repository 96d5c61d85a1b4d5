//! The API client: a kubeconfig file when one is named, otherwise what
//! kube infers (`$KUBECONFIG`, `~/.kube/config`, then the in-cluster
//! service account the DaemonSet mounts).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::error::KubeError;

/// Connects (lazily: no request is sent here) to the cluster.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| KubeError::ClientConfig(format!("reading {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::ClientConfig(format!("{}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| KubeError::ClientConfig(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KubeError::ClientConfig(e.to_string()))
}

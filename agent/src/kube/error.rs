//! Errors of the Kubernetes source: each names the object or resource and
//! what was being done with it.

/// What can go wrong talking to the Kubernetes API or finding a pod's netns.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No client configuration could be built (kubeconfig or in-cluster).
    #[error("Kubernetes client configuration: {0}")]
    ClientConfig(String),
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Api {
        /// The request, e.g. `patch status of ServiceEntry istio-egress/httpbin.org`.
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A watch on a resource stopped or never became ready.
    #[error("watching {resource}: {reason}")]
    Watch {
        /// Plural resource name, e.g. `serviceentries.networking.istio.io`.
        resource: String,
        /// Why.
        reason: String,
    },
    /// An object egret would make exists and another controller made it.
    #[error("{0} exists and is not managed by egret; not taking it over")]
    NotOurs(String),
    /// The cluster CA's Secret cannot be used.
    #[error("cluster CA: {0}")]
    ClusterCa(String),
    /// A CA or certificate could not be loaded or issued.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// The config built from the API could not be compiled or its state kept.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Reading `/proc` to find a pod's network namespace failed.
    #[error("{what}: {source}")]
    Proc {
        /// What was read, e.g. `/proc/42/cgroup`.
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl KubeError {
    /// Wraps a client error with the request it came from.
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
        let what = what.into();
        move |source| KubeError::Api { what, source }
    }
}

//! What the proxy works with, built once by whoever runs it and handed to
//! every connection (ztunnel's `ProxyInputs`): the config, the resolver,
//! the HBONE client, the limits, and the state connections share — metrics,
//! authorization counters, pooled upstream connections, TLS origination.
//! Nothing of it is process-wide: a test builds a proxy of its own and
//! reads its metrics directly.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use super::admission::Admission;
use super::authorize::Authorizer;
use super::http::upstream::UpstreamPool;
use super::limits::Limits;
use super::metrics::ProxyMetrics;
use super::tls::TlsOrigin;
use crate::config::snapshot::Snapshot;
use crate::hbone::HboneClient;
use crate::net::drain;
use crate::route::RetryPolicy;

/// Resolves upstream host names.
pub trait ResolveHost: Send + Sync + 'static {
    /// All addresses of `host`, in the order to try them.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// Everything the proxy needs, shared by all connections.
pub struct ProxyContext {
    /// The current config; each connection reads it at accept, each HTTP
    /// request when it arrives, and open connections on every change.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Resolver for `resolution: DNS` hosts and endpoint names.
    pub resolver: Arc<dyn ResolveHost>,
    /// Trust domain of the SPIFFE identities in access log lines.
    pub trust_domain: String,
    /// Tunnels to remote waypoints (Gateways with `spec.addresses`); `None`
    /// where there is no identity to present (such services are refused).
    pub hbone: Option<Arc<HboneClient>>,
    /// Bounds on what workloads may send and hold open.
    pub limits: Limits,
    /// The connections held against the caps of `limits`.
    pub admission: Arc<Admission>,
    /// The Istio metrics of every connection and request.
    pub metrics: Arc<ProxyMetrics>,
    /// AuthorizationPolicy decisions, and their counters.
    pub authorizer: Arc<Authorizer>,
    /// Upstream connections workloads are done with, for the next request.
    pub upstreams: Arc<UpstreamPool>,
    /// TLS origination: client configs, key material, default roots.
    pub tls: Arc<TlsOrigin>,
    /// Shutdown: listeners stop, HTTP connections wind down, and the root
    /// waits for the connections held open.
    pub drain: drain::Watch,
    /// Istio's default retry policy, built once: requests no route
    /// configures share it instead of allocating their own.
    pub default_retries: Arc<RetryPolicy>,
}

impl ProxyContext {
    /// A proxy of the config `snapshots` send, resolving names with
    /// `resolver`, workload identities in `trust_domain`; default limits,
    /// no HBONE client, the system's roots, nothing counted yet, never drained.
    pub fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        resolver: Arc<dyn ResolveHost>,
        trust_domain: impl Into<String>,
    ) -> Self {
        ProxyContext {
            snapshots,
            resolver,
            trust_domain: trust_domain.into(),
            hbone: None,
            limits: Limits::default(),
            admission: Arc::default(),
            metrics: Arc::default(),
            authorizer: Arc::default(),
            upstreams: Arc::default(),
            tls: Arc::default(),
            drain: drain::Watch::default(),
            default_retries: Arc::new(RetryPolicy::istio_default()),
        }
    }

    /// The same proxy under `limits`.
    pub fn with_limits(self, limits: Limits) -> Self {
        ProxyContext {
            admission: Arc::new(Admission::new(&limits)),
            limits,
            ..self
        }
    }

    /// The same proxy, tunnelling to remote waypoints with `client`.
    pub fn with_hbone(self, client: Arc<HboneClient>) -> Self {
        ProxyContext {
            hbone: Some(client),
            ..self
        }
    }

    /// The same proxy, drained when `drain` is triggered.
    pub fn with_drain(self, drain: drain::Watch) -> Self {
        ProxyContext { drain, ..self }
    }

    /// The same proxy, originating TLS with `tls`.
    pub fn with_tls(self, tls: TlsOrigin) -> Self {
        ProxyContext {
            tls: Arc::new(tls),
            ..self
        }
    }
}

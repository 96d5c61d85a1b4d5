//! The proxy both roots run, built once from their settings: its resolver,
//! limits, TLS roots (`--ca-roots` included) and, on a node, the HBONE
//! client that tunnels to remote waypoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use super::resolver::UpstreamResolver;
use crate::config::snapshot::Snapshot;
use crate::dns::Resolver;
use crate::hbone::HboneClient;
use crate::identity::IdentityStore;
use crate::net::drain;
use crate::proxy::limits::Limits;
use crate::proxy::tls::{read_extra_roots, DefaultRoots, TlsOrigin};
use crate::proxy::ProxyContext;

/// What a root knows about the proxy it runs.
pub struct ProxySettings {
    /// The config in force, and every next one.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Resolvers for upstream names.
    pub dns_upstreams: Vec<SocketAddr>,
    /// Trust domain of workload identities.
    pub trust_domain: String,
    /// Bounds on what workloads may send and hold open.
    pub limits: Limits,
    /// PEM files of CA certificates trusted for TLS origination besides the
    /// system's (`--ca-roots`).
    pub ca_roots: Vec<PathBuf>,
    /// Certificates to tunnel to remote waypoints with; `None` where this
    /// process is the tunnel's end (the standalone waypoint).
    pub tunnels: Option<Arc<IdentityStore>>,
    /// The root's drain: listeners and connections wind down on it.
    pub drain: drain::Watch,
}

/// The proxy of `settings`.
pub fn build(settings: ProxySettings) -> anyhow::Result<Arc<ProxyContext>> {
    let resolver = Resolver::new(settings.dns_upstreams).context("DNS resolver")?;
    let extra = read_extra_roots(&settings.ca_roots)?;
    if !extra.is_empty() {
        tracing::info!(
            certificates = extra.len(),
            "extra CA roots trusted for TLS origination"
        );
    }
    let resolver = Arc::new(UpstreamResolver(Arc::new(resolver)));
    let mut proxy = ProxyContext::new(settings.snapshots, resolver, settings.trust_domain)
        .with_limits(settings.limits)
        .with_tls(TlsOrigin::new(DefaultRoots::with_extra(extra)))
        .with_drain(settings.drain);
    if let Some(store) = settings.tunnels {
        proxy = proxy.with_hbone(Arc::new(HboneClient::new(store)));
    }
    Ok(Arc::new(proxy))
}

//! The standalone waypoint (`egret waypoint`), composed in one place: config
//! watcher -> snapshot; identity store; HBONE server -> L7 pipeline ->
//! upstream. No eBPF, no workloads, no DNS proxy: it is the Gateway's own
//! Deployment, reached by agents and ztunnels over HBONE.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::config::snapshot::WaypointRef;
use crate::dns::Resolver;
use crate::hbone::{Inbound, Scope};
use crate::identity::{CertFiles, CertSource, IdentityStore, LocalCa, ServerTls, CA_DIR};
use crate::node::UpstreamResolver;
use crate::proxy::ProxyContext;

/// Where HBONE is served when not told otherwise (all addresses, 15008).
pub const DEFAULT_HBONE_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), crate::hbone::HBONE_PORT);

/// Where a standalone waypoint's config comes from.
#[derive(Clone, Debug)]
pub enum WaypointSource {
    /// Manifests in `config_dir`.
    Folder,
    /// The cluster's API (read only: the elected node agent writes status).
    Kubernetes {
        /// A kubeconfig file; `None`: `$KUBECONFIG`, `~/.kube/config`, in-cluster.
        kubeconfig: Option<PathBuf>,
    },
}

/// Settings of one standalone waypoint.
#[derive(Clone, Debug)]
pub struct WaypointConfig {
    /// Where the config comes from.
    pub source: WaypointSource,
    /// Folder of manifests (its own: the state folder inside is not shared).
    pub config_dir: PathBuf,
    /// Private state (`<config>/.egret`).
    pub state_dir: PathBuf,
    /// The Gateway this process is.
    pub name: WaypointRef,
    /// HBONE listen address.
    pub listen: SocketAddr,
    /// Resolvers for upstream names.
    pub dns_upstreams: Vec<SocketAddr>,
    /// Trust domain of peers and of the waypoint's own identity.
    pub trust_domain: String,
    /// Certificates from files; `None`: the local CA in `ca_dir`.
    pub cert_files: Option<CertFiles>,
    /// The local CA folder (default `<state>/ca`).
    pub ca_dir: Option<PathBuf>,
    /// Admin endpoint (`/metrics`, `/healthz/ready`, `/config_dump`).
    pub admin: SocketAddr,
    /// Bounds on what peers may send and hold open.
    pub limits: crate::proxy::limits::Limits,
}

/// The identity store of a node agent: its local CA in `<state>/ca`.
pub fn local_identities(
    state_dir: &Path,
    trust_domain: &str,
) -> anyhow::Result<Arc<IdentityStore>> {
    identities(trust_domain, None, &state_dir.join(CA_DIR))
}

fn identities(
    trust_domain: &str,
    files: Option<CertFiles>,
    ca_dir: &Path,
) -> anyhow::Result<Arc<IdentityStore>> {
    let source = match files {
        Some(f) => CertSource::Files(f),
        None => CertSource::Ca(
            LocalCa::load_or_create(ca_dir)
                .context("loading the local CA")?
                .signer(),
        ),
    };
    Ok(Arc::new(
        IdentityStore::new(trust_domain, source).context("loading certificates")?,
    ))
}

/// Starts the HBONE server for `proxy` in the background.
pub fn spawn_hbone(
    proxy: Arc<ProxyContext>,
    identities: Arc<IdentityStore>,
    scope: Scope,
    listen: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    let inbound = Arc::new(Inbound {
        proxy,
        authorizer: Some(Arc::new(crate::proxy::authorize::TunnelAuthorizer)),
    });
    let tls = Arc::new(ServerTls::new(identities));
    crate::hbone::server::spawn(inbound, tls, scope, listen)
}

/// Runs the waypoint until SIGINT or SIGTERM.
pub async fn run(cfg: WaypointConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("create state folder {}", cfg.state_dir.display()))?;
    // Not ready (503) until the config is loaded and HBONE is served.
    let admin = crate::admin::start(cfg.admin)?;
    let snapshots = match &cfg.source {
        WaypointSource::Folder => {
            crate::config::start(cfg.config_dir.clone(), cfg.state_dir.clone())
                .await
                .context("reading the config folder")?
        }
        WaypointSource::Kubernetes { kubeconfig } => {
            let client = crate::kube::client::connect(kubeconfig.as_deref())
                .await
                .context("Kubernetes API client")?;
            let options = crate::kube::SourceOptions {
                writer: crate::kube::StatusWriter::Never,
                waypoints: crate::kube::WaypointMode::Local,
                state_dir: Some(cfg.state_dir.clone()),
            };
            crate::kube::start(client, options).await
        }
    };
    let ca_dir = cfg
        .ca_dir
        .clone()
        .unwrap_or_else(|| cfg.state_dir.join(CA_DIR));
    let identities = identities(&cfg.trust_domain, cfg.cert_files.clone(), &ca_dir)?;
    let resolver = Arc::new(Resolver::new(cfg.dns_upstreams.clone()).context("DNS resolver")?);
    let proxy = Arc::new(ProxyContext {
        snapshots: snapshots.clone(),
        resolver: Arc::new(UpstreamResolver(resolver)),
        trust_domain: cfg.trust_domain.clone(),
        // The waypoint is the end of the tunnel: it never opens one.
        hbone: None,
        admission: Arc::new(crate::proxy::admission::Admission::new(&cfg.limits)),
        limits: cfg.limits,
    });
    let server = spawn_hbone(
        proxy,
        identities,
        Scope::Waypoint(cfg.name.clone()),
        cfg.listen,
    );
    admin.admin.set_ready(crate::admin::AdminView {
        metrics: crate::metrics::MetricsRegistry::new(crate::metrics::sources::WaypointReadings {
            snapshots: snapshots.clone(),
        }),
        snapshots,
        workloads: None,
    });
    tracing::info!(waypoint = %cfg.name, listen = %cfg.listen, config_dir = %cfg.config_dir.display(), "egret waypoint ready");
    let result = tokio::select! {
        r = server => r.context("HBONE server"),
        _ = shutdown_signal() => Ok(()),
    };
    tracing::info!("shutting down");
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

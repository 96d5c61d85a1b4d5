//! The standalone waypoint (`egret waypoint`), composed in one place: config
//! watcher -> snapshot; identity store; HBONE server -> L7 pipeline ->
//! upstream. No eBPF, no workloads, no DNS proxy: it is the Gateway's own
//! Deployment, reached by agents and ztunnels over HBONE.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::app::proxy::ProxySettings;
use crate::config::snapshot::WaypointRef;
use crate::identity::{CertFiles, CA_DIR};
use crate::proxy::Serves;

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
    /// PEM files of CA roots trusted for TLS origination besides the
    /// system's (`--ca-roots`).
    pub ca_roots: Vec<PathBuf>,
    /// How long open connections may take to finish after SIGTERM.
    pub drain_timeout: std::time::Duration,
}

/// Runs the waypoint until SIGINT or SIGTERM, then drains its connections.
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
                writer: crate::kube::StatusWriterMode::Never,
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
    let identities =
        crate::app::hbone::identities(&cfg.trust_domain, cfg.cert_files.clone(), &ca_dir)?;
    let (drain, draining) = crate::net::drain::channel();
    let proxy = crate::app::proxy::build(ProxySettings {
        snapshots: snapshots.clone(),
        dns_upstreams: cfg.dns_upstreams.clone(),
        trust_domain: cfg.trust_domain.clone(),
        limits: cfg.limits,
        ca_roots: cfg.ca_roots.clone(),
        // The waypoint is the end of the tunnel: it never opens one.
        tunnels: None,
        drain: draining,
    })?;
    let server = crate::app::hbone::spawn(
        proxy.clone(),
        identities,
        Serves::Waypoint(cfg.name.clone()),
        cfg.listen,
    );
    admin.admin.set_ready(crate::admin::AdminView {
        metrics: crate::metrics::MetricsRegistry::new(
            |r| proxy.metrics.register(r),
            crate::app::readings::WaypointReadings {
                authorizer: proxy.authorizer.clone(),
                snapshots: snapshots.clone(),
            },
        ),
        snapshots,
        workloads: None,
        drain: proxy.drain.clone(),
    });
    tracing::info!(waypoint = %cfg.name, listen = %cfg.listen, config_dir = %cfg.config_dir.display(), "egret waypoint ready");
    let result = tokio::select! {
        r = server => r.context("HBONE server"),
        _ = crate::app::signal::shutdown() => Ok(()),
    };
    tracing::info!("shutting down");
    crate::app::drain::drain(drain, cfg.drain_timeout).await;
    result
}

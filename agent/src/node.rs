//! The node agent, composed in one place: config source (a folder, or the
//! Kubernetes API) -> snapshot -> kernel maps, workloads (created by
//! `egret exec`, or this node's pods adopted), DNS proxy and waypoint;
//! control socket for the CLI.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ipnet::{IpNet, Ipv4Net};
use tokio::sync::{broadcast, watch};

use crate::app::proxy::ProxySettings;
use crate::config::snapshot::Snapshot;
use crate::control::server::{serve, ControlHandler};
use crate::control::{protocol::SOCKET_NAME, AgentStatus};
use crate::dns::DnsProxy;
use crate::kernel::events::KernelEvent;
use crate::kernel::{Kernel, PinDir, Placement};
use crate::kube::pods::PodOptions;
use crate::kube::StatusWriterMode;
use crate::proxy::Serves;
use crate::workload::podnet::PodNetwork;
use crate::workload::{CreatedWorkload, Services, WorkloadManager};

/// Settings of one node agent.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Where non-mesh DNS queries and upstream names go.
    pub dns_upstreams: Vec<SocketAddr>,
    pub trust_domain: String,
    /// A built eBPF object to load instead of the embedded one.
    pub bpf_object: Option<PathBuf>,
    /// Bridge and CIDR of the pod network for `egret exec` workloads.
    pub bridge: String,
    pub pod_cidr: Ipv4Net,
    /// Where the config comes from.
    pub source: ConfigSource,
    /// Admin endpoint (`/metrics`, `/healthz/ready`, `/config_dump`).
    pub admin: SocketAddr,
    /// Bounds on what workloads may send and hold open.
    pub limits: crate::proxy::limits::Limits,
    /// PEM files of CA roots trusted for TLS origination besides the
    /// system's (`--ca-roots`).
    pub ca_roots: Vec<PathBuf>,
    /// bpffs folder of this instance's pinned programs and maps; `None`:
    /// `/sys/fs/bpf/egret/<state dir>`.
    pub bpf_pin_dir: Option<PathBuf>,
    /// The node's pod and service networks: what a REGISTRY_ONLY workload
    /// reaches directly (loopback always).
    pub mesh_networks: Vec<IpNet>,
    /// How long open connections may take to finish after SIGTERM.
    pub drain_timeout: std::time::Duration,
}

impl NodeConfig {
    /// The bpffs folder of this agent instance.
    pub fn pin_dir(&self) -> PinDir {
        match &self.bpf_pin_dir {
            Some(dir) => PinDir::new(dir),
            None => PinDir::for_state_dir(&self.state_dir),
        }
    }
}

/// Where the agent's config (and its workloads) come from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// `config_dir`'s manifests; workloads are made by `egret exec`.
    Folder,
    /// The cluster's API; workloads are this node's pods.
    Kubernetes(KubernetesSource),
}

/// Settings of Kubernetes mode.
#[derive(Clone, Debug)]
pub struct KubernetesSource {
    /// A kubeconfig file; `None`: `$KUBECONFIG`, `~/.kube/config`, in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// This node's name: only its pods are adopted.
    pub node_name: String,
    /// Who writes ServiceEntry/Gateway status.
    pub status_writer: StatusWriterMode,
    /// The host's `/proc` (pods' namespaces are found there).
    pub proc_root: PathBuf,
    /// Cluster CA and waypoint Deployments.
    pub cluster: Box<crate::kube::cluster::ClusterOptions>,
}

/// Runs the agent until SIGINT or SIGTERM, drains its connections, then
/// removes everything it made (or leaves the kernel enforcing for the next
/// agent).
pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("create state folder {}", cfg.state_dir.display()))?;
    // Before touching the kernel: a second agent on the same folder would
    // swap the running one's programs from under it.
    let socket = cfg.state_dir.join(SOCKET_NAME);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        anyhow::bail!(
            "another egret agent is already serving {}",
            cfg.config_dir.display()
        );
    }
    // First, in the agent's own netns: not ready (503) until composed.
    let admin = crate::admin::start(cfg.admin)?;
    let pins = cfg.pin_dir();
    let earlier = Kernel::left_in_force(&pins);
    let kernel = Arc::new(
        Kernel::load(cfg.bpf_object.as_deref(), pins.clone()).context("loading eBPF programs")?,
    );
    kernel
        .sync_registry_nets(&crate::kernel::registry::registry_nets(&cfg.mesh_networks))
        .context("filling REGISTRY_NETS")?;
    let (snapshots, cluster, identities) = match &cfg.source {
        ConfigSource::Folder => {
            let rx = crate::config::start(cfg.config_dir.clone(), cfg.state_dir.clone())
                .await
                .context("reading the config folder")?;
            let local = crate::app::hbone::local_identities(&cfg.state_dir, &cfg.trust_domain)?;
            (rx, None, local)
        }
        ConfigSource::Kubernetes(k) => {
            let c = crate::kube::cluster::join(
                k.kubeconfig.as_deref(),
                k.status_writer.clone(),
                &k.cluster,
                &cfg.trust_domain,
                &cfg.state_dir,
            )
            .await
            .context("joining the Kubernetes cluster")?;
            (c.snapshots, Some((c.client, k.clone())), c.identities)
        }
    };
    let dns = DnsProxy::new(snapshots.clone(), cfg.dns_upstreams.clone());
    let (drain, draining) = crate::net::drain::channel();
    let proxy = crate::app::proxy::build(ProxySettings {
        snapshots: snapshots.clone(),
        dns_upstreams: cfg.dns_upstreams.clone(),
        trust_domain: cfg.trust_domain.clone(),
        limits: cfg.limits,
        ca_roots: cfg.ca_roots.clone(),
        tunnels: Some(identities.clone()),
        drain: draining,
    })?;
    // Waypoints whose Gateway address is this node's are served here.
    let hbone_server = crate::app::hbone::spawn(
        proxy.clone(),
        identities,
        Serves::ByAddress,
        crate::app::hbone::DEFAULT_HBONE_LISTEN,
    );
    // Pods in a cluster have their CNI's network; only `egret exec` needs ours.
    let podnet = match cfg.source {
        ConfigSource::Folder => {
            Some(PodNetwork::setup(&cfg.bridge, cfg.pod_cidr).context("pod network")?)
        }
        ConfigSource::Kubernetes(_) => None,
    };
    let cgroup_root = crate::kernel::cgroup2_root().context("finding the cgroup v2 mount")?;
    let manager = Arc::new(WorkloadManager::new(
        Services {
            kernel: kernel.clone(),
            dns: dns.clone(),
            proxy: proxy.clone(),
            snapshots: snapshots.clone(),
        },
        podnet,
        cgroup_root,
        cfg.state_dir.clone(),
        cfg.dns_upstreams.clone(),
    ));
    let (events, _) = broadcast::channel::<KernelEvent>(1024);
    let agent = Arc::new(Agent {
        kernel: kernel.clone(),
        manager: manager.clone(),
        snapshots: snapshots.clone(),
        events: events.clone(),
        monitors: std::sync::atomic::AtomicUsize::new(0),
        trust_domain: cfg.trust_domain.clone(),
    });
    // The maps hold the config in force before any program reads them.
    sync_kernel(&kernel, &snapshots.borrow());
    if matches!(cfg.source, ConfigSource::Folder) {
        let m = manager.clone();
        let taken = tokio::task::spawn_blocking(move || m.take_over_recorded()).await?;
        if taken > 0 {
            tracing::info!(
                workloads = taken,
                "workloads of an earlier agent taken over"
            );
        }
    }
    let placed = kernel
        .put_in_force()
        .context("putting the eBPF programs in force")?;
    let swapped = placed
        .iter()
        .filter(|(_, p)| *p == Placement::Swapped)
        .count();
    tracing::info!(
        pin_dir = %pins.path().display(),
        programs = placed.len(),
        swapped,
        took_over = earlier,
        "kernel programs in force"
    );
    if matches!(cfg.source, ConfigSource::Folder) {
        // Every workload this instance knows is back: the rest are gone.
        manager.forget_unknown_enrollments();
    }
    let event_reader = kernel.take_events().map(|ring| {
        tokio::spawn(crate::kernel::events::read_events(
            ring,
            deliver_event(manager.clone(), events.clone(), cfg.trust_domain.clone()),
        ))
    });
    let reaper = tokio::spawn(reap_ended_workloads(manager.clone()));
    let sync = tokio::spawn(apply_snapshots(
        snapshots.clone(),
        kernel.clone(),
        manager.clone(),
    ));
    let logs = tokio::spawn(forward_kernel_logs(kernel.clone()));
    let pods = cluster.map(|(client, k)| {
        let options = PodOptions {
            node_name: k.node_name,
            proc_root: k.proc_root,
        };
        crate::kube::pods::spawn(client, options, manager.clone(), snapshots.clone())
    });
    let mut control = {
        let agent: Arc<dyn ControlHandler> = agent.clone();
        let socket = socket.clone();
        tokio::spawn(async move { serve(&socket, agent).await })
    };
    admin.admin.set_ready(crate::admin::AdminView {
        metrics: crate::metrics::MetricsRegistry::new(
            |r| proxy.metrics.register(r),
            crate::app::readings::AgentReadings {
                authorizer: proxy.authorizer.clone(),
                kernel: kernel.clone(),
                dns,
                workloads: manager.clone(),
                snapshots: snapshots.clone(),
            },
        ),
        snapshots: snapshots.clone(),
        workloads: Some({
            let manager = manager.clone();
            Box::new(move || manager.list())
        }),
        drain: proxy.drain.clone(),
    });
    tracing::info!(config_dir = %cfg.config_dir.display(), socket = %socket.display(), "egret agent ready");
    let result = tokio::select! {
        r = &mut control => match r {
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("control socket")),
            _ => Ok(()),
        },
        _ = crate::app::signal::shutdown() => Ok(()),
    };
    tracing::info!("shutting down");
    // Nothing new comes in: no workload, no pod, no connection (the
    // listeners close, so the kernel's redirects to them are refused). The
    // kernel programs, their maps and snapshot updates stay in force while
    // open connections finish.
    control.abort();
    if let Some(p) = pods {
        p.abort();
    }
    crate::app::drain::drain(drain, cfg.drain_timeout).await;
    sync.abort();
    logs.abort();
    reaper.abort();
    if let Some(r) = event_reader {
        r.abort();
    }
    hbone_server.abort();
    drop(admin);
    let _ = std::fs::remove_file(&socket);
    let m = manager.clone();
    let keep = matches!(cfg.source, ConfigSource::Kubernetes(_)) || manager.count() > 0;
    if keep {
        // Workloads run on: the kernel keeps enforcing (their captured
        // traffic is refused, REGISTRY_ONLY holds) until an agent takes over.
        tokio::task::spawn_blocking(move || m.leave_running()).await?;
        tracing::info!(pin_dir = %pins.path().display(), workloads = manager.count(), "kernel programs left in force for the next agent");
    } else {
        tokio::task::spawn_blocking(move || m.shutdown()).await?;
        if let Err(e) = Kernel::remove_pinned(&pins) {
            tracing::warn!(error = %e, "could not remove the pinned kernel objects");
        }
    }
    result
}

/// Puts one snapshot's services in the kernel maps.
fn sync_kernel(kernel: &Kernel, snapshot: &Snapshot) {
    match kernel.sync_services(snapshot.vips()) {
        Ok(report) => tracing::info!(
            generation = snapshot.generation,
            services = snapshot.services.len(),
            kernel_added = report.added,
            kernel_removed = report.removed,
            "config in force"
        ),
        Err(e) => {
            tracing::error!(generation = snapshot.generation, error = %e, "kernel map sync failed")
        }
    }
    if let Err(e) = kernel.sync_service_ranges(snapshot.address_nets()) {
        tracing::error!(generation = snapshot.generation, error = %e, "kernel range map sync failed");
    }
}

/// Every kernel event: denials go to the access log (with the workload's
/// identity), and every event to the `egret monitor` sessions listening.
fn deliver_event(
    manager: Arc<WorkloadManager>,
    monitors: broadcast::Sender<KernelEvent>,
    trust_domain: String,
) -> impl FnMut(KernelEvent) {
    move |event| {
        if let crate::kernel::events::Verdict::Denied(reason) = event.verdict {
            let workload = manager.by_netns_cookie(event.netns_cookie);
            crate::verdicts::log_denial(&event, reason, workload.as_deref(), &trust_domain);
        }
        let _ = monitors.send(event);
    }
}

/// Removes taken-over workloads whose command ended.
async fn reap_ended_workloads(manager: Arc<WorkloadManager>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let m = manager.clone();
        let _ = tokio::task::spawn_blocking(move || m.reap_ended()).await;
    }
}

/// Puts every new snapshot in force: kernel SERVICES by diff, enrollment.
async fn apply_snapshots(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    kernel: Arc<Kernel>,
    manager: Arc<WorkloadManager>,
) {
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        sync_kernel(&kernel, &snapshot);
        let m = manager.clone();
        let s = snapshot.clone();
        let _ = tokio::task::spawn_blocking(move || m.reconcile(&s)).await;
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// Relays the kernel programs' aya-log records into the agent's log.
async fn forward_kernel_logs(kernel: Arc<Kernel>) {
    let Some(fd) = kernel.log_fd() else { return };
    // SAFETY: the fd belongs to the logger inside `kernel`, which this task
    // keeps alive for as long as the registration exists.
    let Ok(async_fd) = (unsafe { tokio::io::unix::AsyncFd::register(fd) }) else {
        return;
    };
    loop {
        let Ok(mut guard) = async_fd.readable().await else {
            return;
        };
        kernel.flush_logs();
        guard.clear_ready();
    }
}

/// The control socket's view of the agent.
struct Agent {
    kernel: Arc<Kernel>,
    manager: Arc<WorkloadManager>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    events: broadcast::Sender<KernelEvent>,
    /// `egret monitor --redirects` sessions: redirect events are on while
    /// there is at least one.
    monitors: std::sync::atomic::AtomicUsize,
    trust_domain: String,
}

impl ControlHandler for Agent {
    fn create_workload(
        &self,
        namespace: &str,
        service_account: &str,
        name: Option<&str>,
    ) -> Result<CreatedWorkload, String> {
        self.manager
            .create(namespace, service_account, name)
            .map_err(|e| format!("cannot create workload {namespace}/{service_account}: {e}"))
    }

    fn remove_workload(&self, id: u64) {
        self.manager.remove(id);
    }

    fn trust_domain(&self) -> String {
        self.trust_domain.clone()
    }

    fn release_adopted(&self, id: u64) -> bool {
        self.manager.release_adopted(id)
    }

    fn subscribe(&self, redirects: bool) -> crate::control::Subscription {
        use std::sync::atomic::Ordering;
        if redirects && self.monitors.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Err(e) = self.kernel.set_monitor_redirects(true) {
                tracing::warn!(error = %e, "redirect events could not be turned on");
            }
        }
        let manager = self.manager.clone();
        crate::control::Subscription {
            events: self.events.subscribe(),
            workload: Box::new(move |cookie| manager.by_netns_cookie(cookie)),
        }
    }

    fn unsubscribe(&self, redirects: bool) {
        use std::sync::atomic::Ordering;
        if redirects && self.monitors.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = self.kernel.set_monitor_redirects(false);
        }
    }

    fn generation(&self) -> u64 {
        self.snapshots.borrow().generation
    }

    fn status(&self) -> AgentStatus {
        let snapshot = self.snapshots.borrow().clone();
        let mut services: Vec<String> = snapshot
            .services
            .iter()
            .map(|s| {
                let vips: Vec<String> = s.vips.iter().map(IpAddr::to_string).collect();
                format!("{}={}", s.host, vips.join(","))
            })
            .collect();
        services.sort();
        let kernel_services = self
            .kernel
            .services()
            .unwrap_or_default()
            .into_iter()
            .map(|k| {
                let ip = IpAddr::from(k.addr).to_canonical();
                format!("{ip} {}", k.port)
            })
            .collect();
        let kernel_service_ranges = self
            .kernel
            .service_ranges()
            .unwrap_or_default()
            .into_iter()
            .map(|r| range_text(r.addr, r.prefix_len))
            .collect();
        AgentStatus {
            generation: snapshot.generation,
            services,
            kernel_services,
            kernel_service_ranges,
            kernel_enrolled: self.kernel.enrolled().unwrap_or_default(),
            workloads: self.manager.list(),
            kernel_stats: self
                .kernel
                .stats()
                .unwrap_or_default()
                .into_iter()
                .map(|(s, n)| (format!("{s:?}"), n))
                .collect(),
        }
    }
}

/// `a.b.c.d/len` or `x::/len`: IPv4 ranges are stored IPv4-mapped, 96 bits
/// longer.
fn range_text(addr: [u8; 16], prefix_len: u32) -> String {
    match IpAddr::from(addr).to_canonical() {
        IpAddr::V4(v4) => format!("{v4}/{}", prefix_len.saturating_sub(96)),
        v6 => format!("{v6}/{prefix_len}"),
    }
}

//! Keeps the node's workloads: creates each one's namespace, cgroup and
//! listeners, enrolls it in the kernel when its namespace is ambient, and
//! removes every trace of it when it goes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use egret_common::{FlowKey, Reason, AF_INET, AF_INET6};
use serde::Serialize;
use tokio::task::JoinHandle;

use super::cgroup::WorkloadCgroup;
use super::enrollment::{mode_name, wanted_flags};
use super::error::WorkloadError;
use super::listeners::{bind_in, NetnsSockets};
use super::netns::NamedNetns;
use super::podnet::PodNetwork;
use super::record::{workloads_dir, WorkloadRecord};
use super::source::source_ip;
use crate::config::snapshot::Snapshot;
use crate::dns::DnsProxy;
use crate::identity::WorkloadInfo;
use crate::kernel::Kernel;
use crate::proxy::{handle_outbound, ProxyContext};

/// What a new workload needs to run its command.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CreatedWorkload {
    pub id: u64,
    pub name: String,
    pub netns: PathBuf,
    pub cgroup: PathBuf,
    pub resolv_conf: PathBuf,
    pub ip: Ipv4Addr,
    pub enrolled: bool,
}

/// A workload as `egret debug` lists it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct WorkloadSummary {
    pub id: u64,
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub ip: IpAddr,
    pub netns_cookie: u64,
    pub enrolled: bool,
    /// Outbound traffic policy in force in the kernel: `ALLOW_ANY`,
    /// `REGISTRY_ONLY`, or `-` when not enrolled.
    #[serde(default)]
    pub outbound: String,
    /// Taken over from an earlier agent (not made by this one).
    #[serde(default)]
    pub adopted: bool,
}

pub(super) struct Running {
    pub(super) info: Arc<WorkloadInfo>,
    pub(super) origin: Origin,
    pub(super) tasks: Vec<JoinHandle<()>>,
    /// `ENROLL_*` flags in force in the kernel, `None` when not enrolled.
    pub(super) enrolled: Option<u32>,
    /// Taken over from an earlier agent: no control connection owns it, so
    /// it goes when its processes are gone.
    pub(super) adopted: bool,
}

/// Where a workload's namespace came from, and so what removing it undoes.
pub(super) enum Origin {
    /// Made by the agent for `egret exec`: namespace, veth, cgroup, files.
    Created {
        netns: NamedNetns,
        cgroup: WorkloadCgroup,
        dir: PathBuf,
    },
    /// A Kubernetes pod's namespace, adopted: only the agent's listeners and
    /// the kernel entry are the agent's to remove.
    Pod { uid: String },
}

/// Shared services a workload's listeners hand their traffic to.
pub struct Services {
    pub kernel: Arc<Kernel>,
    pub dns: Arc<DnsProxy>,
    pub proxy: Arc<ProxyContext>,
    pub snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>,
}

/// The node's workloads.
pub struct WorkloadManager {
    pub(super) services: Services,
    podnet: Option<PodNetwork>,
    cgroup_root: PathBuf,
    state_dir: PathBuf,
    nameservers: Vec<SocketAddr>,
    pub(super) next_id: AtomicU64,
    workloads: Mutex<HashMap<u64, Running>>,
    /// Kernel denial counters of workloads that are gone, by namespace, so
    /// the metric never goes down.
    retired_denials: Mutex<HashMap<(String, Reason), u64>>,
}

impl WorkloadManager {
    /// A manager whose created workloads hang off `podnet` (none in
    /// Kubernetes mode, where pods are adopted instead), with cgroups under
    /// `cgroup_root` and per-workload files under `state_dir/workloads`.
    pub fn new(
        services: Services,
        podnet: Option<PodNetwork>,
        cgroup_root: PathBuf,
        state_dir: PathBuf,
        nameservers: Vec<SocketAddr>,
    ) -> Self {
        WorkloadManager {
            services,
            podnet,
            cgroup_root,
            state_dir,
            nameservers,
            next_id: AtomicU64::new(1),
            workloads: Mutex::new(HashMap::new()),
            retired_denials: Mutex::new(HashMap::new()),
        }
    }

    /// The pod network of `egret exec` workloads, when this agent has one.
    pub fn podnet(&self) -> Option<&PodNetwork> {
        self.podnet.as_ref()
    }

    /// The agent's state folder.
    pub(super) fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// Creates a workload of `namespace`/`service_account`. Blocking (runs
    /// `ip`); call from a blocking context.
    pub fn create(
        &self,
        namespace: &str,
        service_account: &str,
        name: Option<&str>,
    ) -> Result<CreatedWorkload, WorkloadError> {
        let Some(podnet) = &self.podnet else {
            return Err(WorkloadError::Io {
                what: "egret exec".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "this agent has no pod network (Kubernetes mode adopts pods instead)",
                ),
            });
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| format!("{service_account}-{pid}-{id}"));
        let netns = NamedNetns::create(&format!("egret-{pid}-{id}"))?;
        let ip = match podnet.allocate() {
            Ok(ip) => ip,
            Err(e) => {
                netns.remove();
                return Err(e);
            }
        };
        let built = self.build(id, &name, namespace, service_account, &netns, ip);
        let (running, created) = match built {
            Ok(r) => r,
            Err(e) => {
                netns.remove();
                podnet.release(ip);
                return Err(e);
            }
        };
        // `running` names the same namespace (NamedNetns is only its name).
        self.lock().insert(id, running);
        tracing::info!(workload = %name, namespace, service_account, %ip, enrolled = created.enrolled, "workload started");
        Ok(created)
    }

    fn build(
        &self,
        id: u64,
        name: &str,
        namespace: &str,
        service_account: &str,
        netns: &NamedNetns,
        ip: Ipv4Addr,
    ) -> Result<(Running, CreatedWorkload), WorkloadError> {
        let host_if = format!("egv{}x{id}", std::process::id() % 100_000);
        if let Some(podnet) = &self.podnet {
            podnet.attach(&netns.name, &host_if, ip)?;
        }
        let sockets = bind_in(&netns.path())?;
        let cgroup = WorkloadCgroup::create(&self.cgroup_root, &netns.name)?;
        let dir = workloads_dir(&self.state_dir).join(id.to_string());
        std::fs::create_dir_all(&dir)
            .map_err(WorkloadError::io(format!("create {}", dir.display())))?;
        let resolv_conf = dir.join("resolv.conf");
        std::fs::write(&resolv_conf, resolv_conf_text(&self.nameservers)).map_err(
            WorkloadError::io(format!("write {}", resolv_conf.display())),
        )?;
        let info = Arc::new(WorkloadInfo {
            name: name.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            ip: IpAddr::V4(ip),
            netns_cookie: sockets.netns_cookie,
        });
        let record = WorkloadRecord {
            id,
            name: name.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            ip,
            netns: netns.name.clone(),
            cgroup: cgroup.path.clone(),
            netns_cookie: info.netns_cookie,
        };
        let enrolled = wanted_flags(&self.services.snapshots.borrow(), namespace);
        let setup = || -> Result<Vec<JoinHandle<()>>, WorkloadError> {
            record.save(&dir)?;
            if let Some(flags) = enrolled {
                self.services.kernel.enroll(info.netns_cookie, flags)?;
            }
            self.spawn_listeners(&info, &[], sockets)
        };
        let tasks = match setup() {
            Ok(t) => t,
            Err(e) => {
                let _ = self.services.kernel.unenroll(info.netns_cookie);
                cgroup.remove();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let created = CreatedWorkload {
            id,
            name: name.to_string(),
            netns: netns.path(),
            cgroup: cgroup.path.clone(),
            resolv_conf,
            ip,
            enrolled: enrolled.is_some(),
        };
        let running = Running {
            info,
            origin: Origin::Created {
                netns: NamedNetns {
                    name: netns.name.clone(),
                },
                cgroup,
                dir,
            },
            tasks,
            enrolled,
            adopted: false,
        };
        Ok((running, created))
    }

    /// Serves the workload's listeners; `other_ips`: its addresses besides
    /// `info.ip` (dual-stack pods).
    pub(super) fn spawn_listeners(
        &self,
        info: &Arc<WorkloadInfo>,
        other_ips: &[IpAddr],
        sockets: NetnsSockets,
    ) -> Result<Vec<JoinHandle<()>>, WorkloadError> {
        let mut tasks = Vec::new();
        let other_ips: Arc<[IpAddr]> = Arc::from(other_ips);
        let label: Arc<str> = Arc::from(format!("{}/{}", info.namespace, info.name));
        for l in sockets.outbound {
            let listener = tokio::net::TcpListener::from_std(l)
                .map_err(WorkloadError::io("register outbound listener"))?;
            tasks.push(tokio::spawn(accept_outbound(
                listener,
                info.clone(),
                other_ips.clone(),
                self.services.kernel.clone(),
                self.services.proxy.clone(),
            )));
        }
        for s in sockets.dns_udp {
            let socket = tokio::net::UdpSocket::from_std(s)
                .map_err(WorkloadError::io("register DNS socket"))?;
            let dns = self.services.dns.clone();
            let label = label.clone();
            let drain = self.services.proxy.drain.clone();
            tasks.push(tokio::spawn(async move {
                // Stops at once on drain: a lookup is retried by the client.
                tokio::select! {
                    served = dns.serve_udp(socket, label.clone()) => if let Err(e) = served {
                        tracing::warn!(workload = %label, error = %e, "DNS (udp) listener stopped");
                    },
                    () = drain.signaled() => {}
                }
            }));
        }
        for l in sockets.dns_tcp {
            let listener = tokio::net::TcpListener::from_std(l)
                .map_err(WorkloadError::io("register DNS listener"))?;
            let dns = self.services.dns.clone();
            let label = label.clone();
            let drain = self.services.proxy.drain.clone();
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    served = dns.serve_tcp(listener, label.clone()) => if let Err(e) = served {
                        tracing::warn!(workload = %label, error = %e, "DNS (tcp) listener stopped");
                    },
                    () = drain.signaled() => {}
                }
            }));
        }
        Ok(tasks)
    }

    /// Removes a workload: listeners closed, kernel entry gone, cgroup
    /// emptied and removed, namespace deleted. Blocking.
    pub fn remove(&self, id: u64) {
        let Some(running) = self.lock().remove(&id) else {
            return;
        };
        self.teardown(running);
    }

    pub(super) fn teardown(&self, running: Running) {
        for t in &running.tasks {
            t.abort();
        }
        match self.services.kernel.unenroll(running.info.netns_cookie) {
            Ok(denials) => {
                let mut retired = self
                    .retired_denials
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for (reason, count) in denials {
                    *retired
                        .entry((running.info.namespace.clone(), reason))
                        .or_default() += count;
                }
            }
            Err(e) => {
                tracing::warn!(workload = %running.info.name, error = %e, "could not unenroll")
            }
        }
        if let Origin::Created { netns, cgroup, dir } = &running.origin {
            cgroup.remove();
            netns.remove();
            if let (IpAddr::V4(ip), Some(podnet)) = (running.info.ip, &self.podnet) {
                podnet.release(ip);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
        tracing::info!(workload = %running.info.name, namespace = %running.info.namespace, "workload stopped");
    }

    /// Brings enrollment in line with the namespaces' labels in `snapshot`.
    pub fn reconcile(&self, snapshot: &Snapshot) {
        let mut workloads = self.lock();
        for running in workloads.values_mut() {
            let want = wanted_flags(snapshot, &running.info.namespace);
            if want == running.enrolled {
                continue;
            }
            let cookie = running.info.netns_cookie;
            let result = match want {
                Some(flags) => self.services.kernel.enroll(cookie, flags),
                None => self.services.kernel.unenroll(cookie).map(|_| ()),
            };
            match result {
                Ok(()) => {
                    running.enrolled = want;
                    tracing::info!(workload = %running.info.name, namespace = %running.info.namespace, enrolled = want.is_some(), outbound = mode_name(want), "enrollment changed");
                }
                Err(e) => {
                    tracing::error!(workload = %running.info.name, error = %e, "could not change enrollment; the kernel keeps the previous one")
                }
            }
        }
    }

    /// Every workload, for `egret debug`.
    pub fn list(&self) -> Vec<WorkloadSummary> {
        let mut list: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, r)| WorkloadSummary {
                id: *id,
                name: r.info.name.clone(),
                namespace: r.info.namespace.clone(),
                service_account: r.info.service_account.clone(),
                ip: r.info.ip,
                netns_cookie: r.info.netns_cookie,
                enrolled: r.enrolled.is_some(),
                outbound: mode_name(r.enrolled).to_string(),
                adopted: r.adopted,
            })
            .collect();
        list.sort_by_key(|w| w.id);
        list
    }

    /// Removes every workload and the pod network. Blocking.
    pub fn shutdown(&self) {
        let all: Vec<Running> = self.lock().drain().map(|(_, r)| r).collect();
        for running in all {
            self.teardown(running);
        }
        if let Some(podnet) = &self.podnet {
            podnet.teardown();
        }
    }

    /// Stops serving the workloads without undoing anything: their
    /// namespaces, kernel enrollment (so the kernel keeps refusing) and
    /// records stay for the next agent to take over.
    pub fn leave_running(&self) {
        for running in self.lock().values() {
            for t in &running.tasks {
                t.abort();
            }
        }
    }

    /// How many workloads there are.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Kernel denials of every workload, past and present, by namespace and
    /// reason (for metrics; never decreases).
    pub fn denials_by_namespace(&self) -> Vec<((String, Reason), u64)> {
        let mut totals = self
            .retired_denials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let namespaces: HashMap<u64, String> = self
            .lock()
            .values()
            .map(|r| (r.info.netns_cookie, r.info.namespace.clone()))
            .collect();
        for (cookie, reason, count) in self.services.kernel.denials().unwrap_or_default() {
            if let Some(ns) = namespaces.get(&cookie) {
                *totals.entry((ns.clone(), reason)).or_default() += count;
            }
        }
        let mut all: Vec<_> = totals.into_iter().collect();
        all.sort();
        all
    }

    /// The workload a netns cookie belongs to, for kernel events.
    pub fn by_netns_cookie(&self, cookie: u64) -> Option<Arc<WorkloadInfo>> {
        self.lock()
            .values()
            .find(|r| r.info.netns_cookie == cookie)
            .map(|r| r.info.clone())
    }

    /// Removes a workload an earlier agent made (no control connection
    /// owns it). Whether there was one.
    pub fn release_adopted(&self, id: u64) -> bool {
        let running = {
            let mut workloads = self.lock();
            match workloads.get(&id) {
                Some(r) if r.adopted => workloads.remove(&id),
                _ => None,
            }
        };
        running.map(|r| self.teardown(r)).is_some()
    }

    /// Takes kernel ENROLLED entries of namespaces no workload here owns
    /// out (a workload that ended while no agent ran). Call once every
    /// workload has been taken over.
    pub fn forget_unknown_enrollments(&self) {
        let known: std::collections::HashSet<u64> =
            self.lock().values().map(|r| r.info.netns_cookie).collect();
        for (cookie, _) in self.services.kernel.enrolled().unwrap_or_default() {
            if !known.contains(&cookie) {
                tracing::info!(
                    netns_cookie = cookie,
                    "enrollment of a namespace no workload owns removed"
                );
                let _ = self.services.kernel.unenroll(cookie);
            }
        }
    }

    /// Puts a running workload in the table under `id`.
    pub(super) fn insert(&self, id: u64, running: Running) {
        self.lock().insert(id, running);
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
        self.workloads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The resolver file bind-mounted over the workload's /etc/resolv.conf.
fn resolv_conf_text(nameservers: &[SocketAddr]) -> String {
    let mut text = String::from("# written by egret for this workload\n");
    for ns in nameservers.iter().filter(|ns| ns.port() == 53).take(3) {
        text.push_str(&format!("nameserver {}\n", ns.ip()));
    }
    if nameservers.iter().all(|ns| ns.port() != 53) {
        // Any port-53 address is captured to the agent's DNS proxy for enrolled
        // workloads; this one keeps glibc from falling back to 127.0.0.1.
        text.push_str("nameserver 10.0.0.10\n");
    }
    text.push_str("options ndots:1\n");
    text
}

/// Accepts captured connections on one outbound listener and hands each to
/// the waypoint with its original destination from the kernel, until the
/// proxy drains: the listener then closes, and the kernel's redirect to it
/// is refused (as when no agent runs).
async fn accept_outbound(
    listener: tokio::net::TcpListener,
    info: Arc<WorkloadInfo>,
    other_ips: Arc<[IpAddr]>,
    kernel: Arc<Kernel>,
    proxy: Arc<ProxyContext>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = proxy.drain.signaled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(workload = %info.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let family = if peer.is_ipv4() { AF_INET } else { AF_INET6 };
        let key = FlowKey {
            netns_cookie: info.netns_cookie,
            port: peer.port(),
            family,
            _pad: 0,
        };
        let orig = match kernel.take_orig_dst(&key) {
            Ok(Some(orig)) => orig,
            Ok(None) => {
                tracing::warn!(workload = %info.name, %peer, "connection on the outbound listener without a captured destination; closed");
                continue;
            }
            Err(e) => {
                tracing::error!(workload = %info.name, error = %e, "original destination lookup failed; closed");
                continue;
            }
        };
        let ip = IpAddr::from(orig.addr).to_canonical();
        let orig_dst = SocketAddr::new(ip, orig.port);
        let src = SocketAddr::new(source_ip(info.ip, &other_ips, peer.ip()), peer.port());
        let held = proxy.drain.hold();
        let served = handle_outbound(proxy.clone(), stream, info.clone(), src, orig_dst);
        tokio::spawn(async move {
            served.await;
            drop(held);
        });
    }
}

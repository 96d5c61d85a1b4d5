//! `egret run`: the node agent.

use std::path::Path;

use anyhow::Context;
use ipnet::Ipv4Net;

use crate::kube::cluster::ClusterOptions;
use crate::kube::cluster_ca::{CaSecrets, SecretRef};
use crate::kube::lease::LeaseConfig;
use crate::kube::waypoints::WaypointTemplate;
use crate::kube::StatusWriterMode;
use crate::node::{run as run_node, ConfigSource, KubernetesSource, NodeConfig};

use super::proxy_args::ProxyArgs;

/// Arguments of `egret run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Load this eBPF object instead of the one built into egret.
    #[arg(long, env = "EGRET_BPF_OBJECT")]
    pub bpf_object: Option<std::path::PathBuf>,
    /// Data-plane threads (default: one per CPU the agent may run on). Give
    /// the agent as many as the cores it is pinned to.
    #[arg(long, env = "EGRET_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Bridge of the pod network that `egret exec` workloads hang off.
    #[arg(long, default_value = "egret0")]
    pub bridge: String,
    /// Addresses of `egret exec` workloads (the first is the bridge's).
    #[arg(long, default_value = "10.238.0.0/16")]
    pub pod_cidr: Ipv4Net,
    /// Where config and workloads come from: `folder` (manifests in
    /// --config-dir, `egret exec` workloads) or `kubernetes` (the cluster's
    /// API, this node's pods).
    #[arg(long, value_enum, default_value = "folder", env = "EGRET_SOURCE")]
    pub source: SourceArg,
    /// Same as `--source kubernetes`.
    #[arg(long, conflicts_with = "source")]
    pub kubernetes: bool,
    /// Kubernetes mode: this node's name (the DaemonSet passes it from the
    /// downward API); only pods scheduled here are adopted.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Kubernetes mode: kubeconfig file. Default: $KUBECONFIG,
    /// ~/.kube/config, then the in-cluster service account.
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubernetes mode: who writes ServiceEntry addresses and
    /// Gateway/ServiceEntry conditions: `lease` (the agent holding the
    /// Lease), `always` or `never`.
    #[arg(long, value_enum, default_value = "lease", env = "EGRET_STATUS_WRITER")]
    pub status_writer: WriterArg,
    /// Kubernetes mode: namespace of the status writer's Lease.
    #[arg(long, default_value = "egret-system", env = "POD_NAMESPACE")]
    pub lease_namespace: String,
    /// Kubernetes mode: name of the status writer's Lease.
    #[arg(long, default_value = "egret-status-writer")]
    pub lease_name: String,
    /// Kubernetes mode: the host's /proc (where pods' network namespaces
    /// are found; the DaemonSet mounts it at /host/proc).
    #[arg(long, default_value = "/proc", env = "EGRET_PROC_ROOT")]
    pub proc_root: std::path::PathBuf,
    /// Kubernetes mode: where waypoints run. `deployment`: each waypoint
    /// Gateway gets its own Deployment and Service (made by the elected
    /// agent) and node agents tunnel to it; `node`: every node agent serves
    /// them itself.
    #[arg(
        long,
        value_enum,
        default_value = "deployment",
        env = "EGRET_WAYPOINTS"
    )]
    pub waypoints: WaypointsArg,
    /// Kubernetes mode: the image waypoint Deployments run (egret's own).
    #[arg(long, env = "EGRET_WAYPOINT_IMAGE")]
    pub waypoint_image: Option<String>,
    /// Kubernetes mode: the waypoint Deployments' `imagePullPolicy`.
    #[arg(
        long,
        default_value = "IfNotPresent",
        env = "EGRET_WAYPOINT_IMAGE_PULL_POLICY"
    )]
    pub waypoint_image_pull_policy: String,
    /// Kubernetes mode: replicas of each waypoint Deployment.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..))]
    pub waypoint_replicas: i32,
    /// Kubernetes mode: the ClusterRole that lets waypoints read the config.
    #[arg(
        long,
        default_value = "egret-waypoint",
        env = "EGRET_WAYPOINT_CLUSTER_ROLE"
    )]
    pub waypoint_cluster_role: String,
    /// Kubernetes mode: the Role in istiod's namespace that lets waypoints
    /// read its MeshConfig.
    #[arg(
        long,
        default_value = "egret-mesh-config",
        env = "EGRET_WAYPOINT_MESH_CONFIG_ROLE"
    )]
    pub waypoint_mesh_config_role: String,
    /// Kubernetes mode: Istio's plug-in CA Secret (`NAMESPACE/NAME`), used
    /// when it exists. Default: `cacerts` in the Lease's namespace.
    #[arg(long, env = "EGRET_CA_SECRET")]
    pub ca_secret: Option<SecretRef>,
    /// Kubernetes mode: egret's own cluster CA Secret, created when no
    /// plug-in CA exists. Default: `egret-ca` in the Lease's namespace.
    #[arg(long, env = "EGRET_OWN_CA_SECRET")]
    pub own_ca_secret: Option<SecretRef>,
    /// bpffs folder of this agent's pinned programs and maps (they outlive
    /// the agent). Default: /sys/fs/bpf/egret/<state folder, / as _>.
    #[arg(long, env = "EGRET_BPF_PIN_DIR")]
    pub bpf_pin_dir: Option<std::path::PathBuf>,
    /// The node's pod and service networks (CIDR; repeatable): what a
    /// REGISTRY_ONLY workload may reach directly, besides loopback.
    /// Default: --pod-cidr in folder mode; none in Kubernetes mode (set
    /// your cluster's pod and service CIDRs).
    #[arg(
        long = "mesh-network",
        env = "EGRET_MESH_NETWORKS",
        value_delimiter = ','
    )]
    pub mesh_networks: Vec<ipnet::IpNet>,
    /// What the proxy runs with (shared with the other root).
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// `--source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    Folder,
    Kubernetes,
}

/// `--waypoints`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaypointsArg {
    Deployment,
    Node,
}

/// `--status-writer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WriterArg {
    Lease,
    Always,
    Never,
}

/// How long the status writer's Lease holds without renewal.
const LEASE_DURATION: std::time::Duration = std::time::Duration::from_secs(15);

/// The config source the arguments name.
fn config_source(args: &RunArgs) -> anyhow::Result<ConfigSource> {
    if !args.kubernetes && args.source == SourceArg::Folder {
        return Ok(ConfigSource::Folder);
    }
    let node_name = args
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
        .context("Kubernetes mode needs --node-name (or NODE_NAME)")?;
    let status_writer = match args.status_writer {
        WriterArg::Always => StatusWriterMode::Always,
        WriterArg::Never => StatusWriterMode::Never,
        WriterArg::Lease => StatusWriterMode::Lease(LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity: node_name.clone(),
            duration: LEASE_DURATION,
        }),
    };
    let secret = |given: &Option<SecretRef>, name: &str| {
        given.clone().unwrap_or_else(|| SecretRef {
            namespace: args.lease_namespace.clone(),
            name: name.into(),
        })
    };
    let waypoints = match args.waypoints {
        WaypointsArg::Node => None,
        WaypointsArg::Deployment => Some(WaypointTemplate {
            image: args.waypoint_image.clone().filter(|i| !i.is_empty()).context(
                "waypoint Deployments need --waypoint-image (or EGRET_WAYPOINT_IMAGE); or pass --waypoints=node",
            )?,
            pull_policy: args.waypoint_image_pull_policy.clone(),
            trust_domain: args.proxy.trust_domain.clone(),
            replicas: args.waypoint_replicas,
            cluster_role: args.waypoint_cluster_role.clone(),
            mesh_config_role: args.waypoint_mesh_config_role.clone(),
            log: args.proxy.log.clone(),
        }),
    };
    Ok(ConfigSource::Kubernetes(KubernetesSource {
        kubeconfig: args.kubeconfig.clone(),
        node_name,
        status_writer,
        proc_root: args.proc_root.clone(),
        cluster: Box::new(ClusterOptions {
            ca: CaSecrets {
                plugin: secret(&args.ca_secret, "cacerts"),
                own: secret(&args.own_ca_secret, "egret-ca"),
            },
            waypoints,
        }),
    }))
}

/// Starts the agent on `config_dir`.
pub fn run(config_dir: &Path, state_dir: &Path, args: RunArgs) -> anyhow::Result<()> {
    let _log = args.proxy.start_logging()?;
    let source = config_source(&args)?;
    let mesh_networks = mesh_networks(&args, &source);
    let dns_upstreams = args.proxy.dns_upstreams()?;
    let worker_threads = args.worker_threads.map(usize::from);
    let cfg = NodeConfig {
        config_dir: config_dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        dns_upstreams,
        trust_domain: args.proxy.trust_domain,
        bpf_object: args.bpf_object,
        bridge: args.bridge,
        pod_cidr: args.pod_cidr,
        source,
        admin: args.proxy.admin,
        limits: args.proxy.limits.into(),
        ca_roots: args.proxy.ca_roots,
        bpf_pin_dir: args.bpf_pin_dir,
        mesh_networks,
        drain_timeout: args.proxy.drain.drain_timeout,
    };
    // One data-plane thread runs best without the work-stealing scheduler's
    // cross-thread bookkeeping.
    let mut runtime = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().context("tokio runtime")?;
    super::drain::block_on(runtime, run_node(cfg))
}

/// `--mesh-network`, or the mode's default.
fn mesh_networks(args: &RunArgs, source: &ConfigSource) -> Vec<ipnet::IpNet> {
    if !args.mesh_networks.is_empty() {
        return args.mesh_networks.clone();
    }
    match source {
        ConfigSource::Folder => vec![ipnet::IpNet::V4(args.pod_cidr)],
        ConfigSource::Kubernetes(_) => {
            tracing::warn!("no --mesh-network given: REGISTRY_ONLY workloads reach no pod or service network (set the cluster's pod and service CIDRs)");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `egret run ARGS` parsed.
    fn run_args(args: &[&str]) -> RunArgs {
        let mut argv = vec!["egret", "run"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Run(a) => *a,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn kubernetes_mode_arguments() {
        assert!(matches!(
            config_source(&run_args(&[])).unwrap(),
            ConfigSource::Folder
        ));
        let err = config_source(&run_args(&["--kubernetes"])).unwrap_err();
        assert!(err.to_string().contains("--node-name"), "{err}");
        let err = config_source(&run_args(&["--kubernetes", "--node-name", "n"])).unwrap_err();
        assert!(err.to_string().contains("--waypoint-image"), "{err}");
        let ConfigSource::Kubernetes(k) = config_source(&run_args(&[
            "--source",
            "kubernetes",
            "--node-name",
            "node-a",
            "--lease-namespace",
            "egret",
            "--waypoint-image",
            "registry.example/egret:1",
        ]))
        .unwrap() else {
            panic!("not Kubernetes mode")
        };
        assert_eq!(k.node_name, "node-a");
        let StatusWriterMode::Lease(lease) = k.status_writer else {
            panic!("the default writer is elected")
        };
        assert_eq!(
            (lease.namespace.as_str(), lease.identity.as_str()),
            ("egret", "node-a")
        );
        assert_eq!(k.cluster.ca.plugin.to_string(), "egret/cacerts");
        assert_eq!(k.cluster.ca.own.to_string(), "egret/egret-ca");
        let t = k
            .cluster
            .waypoints
            .expect("waypoints run as Deployments by default");
        assert_eq!(
            (t.image.as_str(), t.replicas),
            ("registry.example/egret:1", 2)
        );
        let ConfigSource::Kubernetes(k) = config_source(&run_args(&[
            "--kubernetes",
            "--node-name=n",
            "--status-writer=always",
            "--proc-root=/host/proc",
            "--waypoints=node",
            "--ca-secret=istio-system/cacerts",
        ]))
        .unwrap() else {
            panic!("not Kubernetes mode")
        };
        assert!(matches!(k.status_writer, StatusWriterMode::Always));
        assert!(k.cluster.waypoints.is_none());
        assert_eq!(k.cluster.ca.plugin.to_string(), "istio-system/cacerts");
        assert_eq!(k.proc_root, std::path::Path::new("/host/proc"));
    }
}

//! `egret waypoint`: a standalone waypoint (HBONE server + L7 pipeline, no
//! eBPF), for a Gateway's own Deployment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::app::hbone::DEFAULT_HBONE_LISTEN;
use crate::config::snapshot::WaypointRef;
use crate::identity::CertFiles;
use crate::waypoint::{run as run_waypoint, WaypointConfig, WaypointSource};

use super::proxy_args::ProxyArgs;

/// Arguments of `egret waypoint`.
#[derive(Debug, clap::Args)]
pub struct WaypointArgs {
    /// The Gateway this waypoint is, `NAMESPACE/NAME`; it presents
    /// `spiffe://<td>/ns/NAMESPACE/sa/NAME` and serves the services bound to it.
    #[arg(long, value_parser = parse_ref)]
    pub name: WaypointRef,
    /// HBONE listen address.
    #[arg(long, default_value_t = DEFAULT_HBONE_LISTEN)]
    pub listen: SocketAddr,
    /// PEM certificate chain to present (with --key and --ca-bundle; re-read
    /// when changed). Default: a certificate from the local CA.
    #[arg(long, requires_all = ["key", "ca_bundle"])]
    pub cert_chain: Option<PathBuf>,
    /// PEM private key of --cert-chain.
    #[arg(long, requires_all = ["cert_chain", "ca_bundle"])]
    pub key: Option<PathBuf>,
    /// PEM roots that peers' certificates must chain to.
    #[arg(long, requires_all = ["cert_chain", "key"])]
    pub ca_bundle: Option<PathBuf>,
    /// Folder of the local CA to issue from (e.g. a copy of a node agent's
    /// `<config>/.egret/ca`). Default: `<config>/.egret/ca`.
    #[arg(long, conflicts_with = "cert_chain")]
    pub ca_dir: Option<PathBuf>,
    /// Take the config from the Kubernetes API (as the waypoint
    /// Deployment egret makes for a Gateway runs) instead of the folder.
    #[arg(long)]
    pub kubernetes: bool,
    /// With --kubernetes: kubeconfig file. Default: $KUBECONFIG,
    /// ~/.kube/config, then the pod's service account.
    #[arg(long, requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// What the proxy runs with (shared with the other root).
    #[command(flatten)]
    pub proxy: ProxyArgs,
}

/// `NAMESPACE/NAME`.
fn parse_ref(text: &str) -> Result<WaypointRef, String> {
    let (namespace, name) = crate::config::object::split_namespaced(text)?;
    Ok(WaypointRef {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// Starts the waypoint on `config_dir`.
pub fn run(config_dir: &Path, state_dir: &Path, args: WaypointArgs) -> anyhow::Result<()> {
    let _log = args.proxy.start_logging()?;
    let dns_upstreams = args.proxy.dns_upstreams()?;
    let cert_files = match (args.cert_chain, args.key, args.ca_bundle) {
        (Some(cert_chain), Some(key), Some(ca_bundle)) => Some(CertFiles {
            cert_chain,
            key,
            ca_bundle,
        }),
        (None, None, None) => None,
        _ => bail!("--cert-chain, --key and --ca-bundle go together"),
    };
    let source = if args.kubernetes {
        WaypointSource::Kubernetes {
            kubeconfig: args.kubeconfig,
        }
    } else {
        WaypointSource::Folder
    };
    let cfg = WaypointConfig {
        source,
        config_dir: config_dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        name: args.name,
        listen: args.listen,
        dns_upstreams,
        trust_domain: args.proxy.trust_domain,
        cert_files,
        ca_dir: args.ca_dir,
        admin: args.proxy.admin,
        limits: args.proxy.limits.into(),
        ca_roots: args.proxy.ca_roots,
        drain_timeout: args.proxy.drain.drain_timeout,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    super::drain::block_on(runtime, run_waypoint(cfg))
}

#[cfg(test)]
mod tests {
    use super::parse_ref;

    #[test]
    fn names_are_namespace_slash_name() {
        let r = parse_ref("istio-egress/egress-waypoint").unwrap();
        assert_eq!(r.namespace, "istio-egress");
        assert_eq!(r.name, "egress-waypoint");
        for bad in ["egress-waypoint", "/x", "x/", "a/b/c"] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }
}

//! `egret run`: the node agent.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use ipnet::Ipv4Net;

use crate::logging::LogFormat;
use crate::node::{run as run_node, NodeConfig};

/// Arguments of `egret run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// DNS server for names that are not mesh services, and for upstream
    /// endpoints (`ip` or `ip:port`; repeatable). Default: the host's resolvers.
    #[arg(long = "dns-upstream", value_parser = parse_dns_addr)]
    pub dns_upstream: Vec<SocketAddr>,
    /// SPIFFE trust domain of workload identities.
    #[arg(long, default_value = "cluster.local", env = "EGRET_TRUST_DOMAIN")]
    pub trust_domain: String,
    /// Load this eBPF object instead of the one built into egret.
    #[arg(long, env = "EGRET_BPF_OBJECT")]
    pub bpf_object: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `info,egret::dns=debug`.
    #[arg(long, default_value = "info", env = "EGRET_LOG")]
    pub log: String,
    /// Bridge of the pod network that `egret exec` workloads hang off.
    #[arg(long, default_value = "egret0")]
    pub bridge: String,
    /// Addresses of `egret exec` workloads (the first is the bridge's).
    #[arg(long, default_value = "10.238.0.0/16")]
    pub pod_cidr: Ipv4Net,
    /// PEM file of CA certificates trusted for TLS origination in addition
    /// to the system roots, when a DestinationRule names no
    /// `caCertificates` (repeatable; comma-separated in the env variable).
    #[arg(long = "ca-roots", env = "EGRET_CA_ROOTS", value_delimiter = ',')]
    pub ca_roots: Vec<std::path::PathBuf>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Starts the agent on `config_dir`.
pub fn run(config_dir: &Path, state_dir: &Path, args: RunArgs) -> anyhow::Result<()> {
    let format = match args.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    };
    crate::logging::init(format, &args.log)?;
    if !args.ca_roots.is_empty() {
        let count = crate::proxy::tls::install_extra_roots(&args.ca_roots)?;
        tracing::info!(
            certificates = count,
            "extra CA roots trusted for TLS origination"
        );
    }
    let dns_upstreams = if args.dns_upstream.is_empty() {
        crate::dns::system_upstreams()
            .context("reading the host's resolvers; pass --dns-upstream")?
    } else {
        args.dns_upstream
    };
    let cfg = NodeConfig {
        config_dir: config_dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        dns_upstreams,
        trust_domain: args.trust_domain,
        bpf_object: args.bpf_object,
        bridge: args.bridge,
        pod_cidr: args.pod_cidr,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run_node(cfg))
}

/// `1.2.3.4`, `1.2.3.4:5353`, `::1` or `[::1]:53`.
fn parse_dns_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{text}` is not an address (ip or ip:port)"))
}

#[cfg(test)]
mod tests {
    use super::parse_dns_addr;

    #[test]
    fn dns_addresses_default_to_port_53() {
        assert_eq!(
            parse_dns_addr("10.0.0.2").unwrap().to_string(),
            "10.0.0.2:53"
        );
        assert_eq!(parse_dns_addr("10.0.0.2:5353").unwrap().port(), 5353);
        assert_eq!(parse_dns_addr("::1").unwrap().to_string(), "[::1]:53");
        assert!(parse_dns_addr("resolver").is_err());
    }
}

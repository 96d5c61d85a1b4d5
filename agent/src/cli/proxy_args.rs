//! The flags both roots (`egret run`, `egret waypoint`) take for the proxy
//! they run — resolvers, trust domain, extra CA roots, logging, the admin
//! endpoint, limits and the drain — declared once and read the same way.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::logging::batched::FlushOnDrop;
use crate::logging::LogFormat;

/// The proxy's flags.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// DNS server for names that are not mesh services, and for upstream
    /// endpoints (`ip` or `ip:port`; repeatable). Default: the host's resolvers.
    #[arg(long = "dns-upstream", value_parser = parse_dns_addr)]
    pub dns_upstream: Vec<SocketAddr>,
    /// SPIFFE trust domain of workload identities, peers and waypoints.
    #[arg(long, default_value = "cluster.local", env = "EGRET_TRUST_DOMAIN")]
    pub trust_domain: String,
    /// PEM file of CA certificates trusted for TLS origination in addition
    /// to the system roots, when a DestinationRule names no
    /// `caCertificates` (repeatable; comma-separated in the env variable).
    #[arg(long = "ca-roots", env = "EGRET_CA_ROOTS", value_delimiter = ',')]
    pub ca_roots: Vec<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `info,egret::dns=debug`.
    #[arg(long, default_value = "info", env = "EGRET_LOG")]
    pub log: String,
    /// Admin endpoint: `/metrics`, `/healthz/ready`, `/config_dump`. Bound
    /// in the process's own network namespace, out of workloads' reach.
    #[arg(long, default_value_t = crate::admin::DEFAULT_ADMIN_LISTEN, env = "EGRET_ADMIN")]
    pub admin: SocketAddr,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub drain: super::drain::DrainArgs,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl ProxyArgs {
    /// Starts logging as the flags say; the guard flushes what is buffered
    /// when the root returns, whichever way.
    pub fn start_logging(&self) -> anyhow::Result<FlushOnDrop<std::io::Stderr>> {
        let format = match self.log_format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        };
        Ok(crate::logging::init(format, &self.log)?.flush_on_drop())
    }

    /// `--dns-upstream`, or the host's resolvers.
    pub fn dns_upstreams(&self) -> anyhow::Result<Vec<SocketAddr>> {
        if self.dns_upstream.is_empty() {
            crate::dns::system_upstreams()
                .context("reading the host's resolvers; pass --dns-upstream")
        } else {
            Ok(self.dns_upstream.clone())
        }
    }
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
    use super::*;

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

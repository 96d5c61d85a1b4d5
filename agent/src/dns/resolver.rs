//! Resolves ServiceEntry endpoint names (resolution DNS) through the same
//! upstreams the proxy forwards to.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::GenericConnector;
use hickory_resolver::AsyncResolver;

use super::forward::TRY_TIMEOUT;
use super::runtime::MarkedRuntime;
use super::DnsError;

/// Names the resolver caches at once.
const CACHE_SIZE: usize = 1024;

/// Resolves upstream endpoint names (ServiceEntry resolution DNS) through the
/// same upstream servers, with a cache that respects record TTLs.
pub struct Resolver {
    inner: AsyncResolver<GenericConnector<MarkedRuntime>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver asking `upstreams` in order, over UDP and (for truncated
    /// replies) TCP.
    pub fn new(upstreams: Vec<SocketAddr>) -> Result<Self, DnsError> {
        if upstreams.is_empty() {
            return Err(DnsError::NoUpstreams);
        }
        let mut config = ResolverConfig::new();
        for upstream in upstreams {
            config.add_name_server(NameServerConfig::new(upstream, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(upstream, Protocol::Tcp));
        }
        let mut options = ResolverOpts::default();
        // Endpoint names are written fully qualified; never try search
        // suffixes (the agent's host suffixes mean nothing to a workload).
        options.ndots = 0;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = CACHE_SIZE;
        options.use_hosts_file = false;
        options.timeout = TRY_TIMEOUT;
        options.attempts = 1;
        // Ask the servers in the configured order, like the proxy does.
        options.server_ordering_strategy =
            hickory_resolver::config::ServerOrderingStrategy::UserProvidedOrder;
        let inner = AsyncResolver::new(
            config,
            options,
            GenericConnector::new(MarkedRuntime::default()),
        );
        Ok(Self { inner })
    }

    /// The addresses of `host` (IPv4 and IPv6), from the cache while the
    /// records' TTLs last. An IP literal is returned as is.
    pub async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        // Fully qualify so no search domain is ever appended.
        let fqdn = if host.ends_with('.') {
            host.to_owned()
        } else {
            format!("{host}.")
        };
        let lookup = self
            .inner
            .lookup_ip(fqdn)
            .await
            .map_err(|source| DnsError::Resolve {
                host: host.to_owned(),
                source,
            })?;
        Ok(lookup.iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_an_upstream() {
        assert!(matches!(
            Resolver::new(Vec::new()),
            Err(DnsError::NoUpstreams)
        ));
    }

    #[tokio::test]
    async fn ip_literals_resolve_to_themselves_without_a_query() {
        // Port 9 on loopback: nothing answers there, so a query would fail.
        let resolver = Resolver::new(vec!["127.0.0.1:9".parse().unwrap()]).unwrap();
        assert_eq!(
            resolver.lookup_ip("192.0.2.1").await.unwrap(),
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            resolver.lookup_ip("2001:db8::1").await.unwrap(),
            vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
    }
}

//! Endpoint selection: the ordered list of addresses a service port's
//! traffic may go to, per the ServiceEntry's `resolution`.

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::config::snapshot::{Endpoint, Resolution, ServicePort};
use crate::net::HostName;

use super::context::UpstreamTarget;
use super::flags::ResponseFlag;
use super::outcome::Flagged;
use super::ResolveHost;

/// Why no upstream address could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The resolver failed for every name it was asked.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The name that failed to resolve (the first, when several did).
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// A wildcard service was asked for a name it does not cover, or for
    /// none at all (the waypoint never resolves names outside the entry).
    #[error("service {host} does not cover host \"{requested}\"")]
    NotCovered {
        /// The wildcard service host.
        host: String,
        /// The name the request asked for (empty when none).
        requested: String,
    },
    /// Resolution succeeded but produced no usable address.
    #[error("service {host} has no endpoint address for port {port}")]
    NoAddress {
        /// The service host.
        host: String,
        /// The service port.
        port: u16,
    },
}

impl Flagged for EndpointError {
    fn flag(&self) -> Option<ResponseFlag> {
        Some(ResponseFlag::NoHealthyUpstream)
    }
}

/// Addresses to try, in order, for `target`. `orig_dst` is where the workload
/// connected (used as is for `resolution: NONE`).
pub async fn select(
    resolver: &dyn ResolveHost,
    target: &UpstreamTarget,
    orig_dst: SocketAddr,
) -> Result<Vec<SocketAddr>, EndpointError> {
    select_for_host(resolver, target, orig_dst, None).await
}

/// Like [`select`], for a request that names `host` (HTTP Host without
/// port, or TLS SNI): a wildcard service (`*.example.com`, DYNAMIC_DNS)
/// resolves that name, provided the wildcard covers it.
pub async fn select_for_host(
    resolver: &dyn ResolveHost,
    target: &UpstreamTarget,
    orig_dst: SocketAddr,
    host: Option<&str>,
) -> Result<Vec<SocketAddr>, EndpointError> {
    let service = &target.service;
    let port = &target.port;
    let addrs = match service.resolution {
        Resolution::None => vec![SocketAddr::new(orig_dst.ip(), default_port(port))],
        Resolution::Static => service
            .endpoints
            .iter()
            .filter_map(|ep| {
                let ip = ep.address.parse::<IpAddr>().ok()?;
                Some(SocketAddr::new(ip, endpoint_port(ep, port)))
            })
            .collect(),
        Resolution::Dns | Resolution::DnsRoundRobin | Resolution::DynamicDns => {
            if service.endpoints.is_empty() {
                let name = upstream_name(&service.host, host)?;
                resolve(resolver, &name)
                    .await?
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, default_port(port)))
                    .collect()
            } else {
                resolve_endpoints(resolver, &service.endpoints, port).await?
            }
        }
    };
    if addrs.is_empty() {
        return Err(EndpointError::NoAddress {
            host: service.host.to_string(),
            port: port.number,
        });
    }
    Ok(addrs)
}

/// The name to resolve for a service host: itself, or for a wildcard the
/// requested name it covers.
pub fn upstream_name(
    service_host: &HostName,
    requested: Option<&str>,
) -> Result<HostName, EndpointError> {
    if !service_host.is_wildcard() {
        return Ok(service_host.clone());
    }
    let requested = HostName::fully_qualified(requested.unwrap_or_default());
    // `*.a.com` covers `x.a.com` and `x.y.a.com`, not `a.com`.
    if service_host.covers(&requested) {
        Ok(requested)
    } else {
        Err(EndpointError::NotCovered {
            host: service_host.to_string(),
            requested: requested.to_string(),
        })
    }
}

/// Resolves each endpoint; one failing name does not hide the others.
async fn resolve_endpoints(
    resolver: &dyn ResolveHost,
    endpoints: &[Endpoint],
    port: &ServicePort,
) -> Result<Vec<SocketAddr>, EndpointError> {
    let mut addrs = Vec::new();
    let mut first_error = None;
    for ep in endpoints {
        match resolve(resolver, &ep.address).await {
            Ok(ips) => addrs.extend(
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, endpoint_port(ep, port))),
            ),
            Err(e) => {
                tracing::debug!(endpoint = %ep.address, error = %e, "endpoint did not resolve");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if addrs.is_empty() => Err(e),
        _ => Ok(addrs),
    }
}

/// An IP literal stands for itself; anything else goes to the resolver.
async fn resolve(resolver: &dyn ResolveHost, host: &str) -> Result<Vec<IpAddr>, EndpointError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    resolver
        .resolve(host)
        .await
        .map_err(|source| EndpointError::Resolve {
            host: host.to_string(),
            source,
        })
}

/// ServiceEntry rule: the endpoint's own port for this port name, else
/// `targetPort`, else the port number.
fn endpoint_port(ep: &Endpoint, port: &ServicePort) -> u16 {
    ep.ports
        .get(&port.name)
        .copied()
        .unwrap_or_else(|| default_port(port))
}

fn default_port(port: &ServicePort) -> u16 {
    port.target_port.unwrap_or(port.number)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::config::snapshot::{Protocol, Service, WaypointBinding};
    use crate::testing::resolver::StaticDns;

    /// Answers `a.test` with two addresses; fails everything else.
    fn a_test() -> Arc<StaticDns> {
        StaticDns::with(&[("a.test", "::1"), ("a.test", "127.0.0.1")])
    }

    fn target(
        resolution: Resolution,
        endpoints: Vec<Endpoint>,
        target_port: Option<u16>,
    ) -> UpstreamTarget {
        let port = ServicePort {
            number: 80,
            name: "http".into(),
            protocol: Protocol::Http,
            target_port,
        };
        UpstreamTarget {
            service: Arc::new(Service {
                namespace: "ns".into(),
                name: "se".into(),
                host: "a.test".into(),
                vips: vec![],
                ports: vec![port.clone()],
                resolution,
                endpoints,
                waypoint: WaypointBinding::None,
            }),
            port,
        }
    }

    fn ep(address: &str, ports: &[(&str, u16)]) -> Endpoint {
        Endpoint {
            address: address.into(),
            ports: ports
                .iter()
                .map(|(n, p)| (n.to_string(), *p))
                .collect::<HashMap<_, _>>(),
        }
    }

    fn dst() -> SocketAddr {
        "10.1.2.3:80".parse().unwrap()
    }

    #[tokio::test]
    async fn dns_without_endpoints_resolves_host_with_target_port() {
        let got = select(
            &*a_test(),
            &target(Resolution::Dns, vec![], Some(8080)),
            dst(),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            vec![
                "[::1]:8080".parse().unwrap(),
                "127.0.0.1:8080".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn dns_endpoints_use_named_port_and_skip_failing_names() {
        let t = target(
            Resolution::DnsRoundRobin,
            vec![ep("missing.test", &[]), ep("a.test", &[("http", 9000)])],
            Some(8080),
        );
        let got = select(&*a_test(), &t, dst()).await.unwrap();
        assert_eq!(
            got,
            vec![
                "[::1]:9000".parse().unwrap(),
                "127.0.0.1:9000".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn dns_failure_is_no_healthy_upstream() {
        let t = target(Resolution::Dns, vec![ep("missing.test", &[])], None);
        let err = select(&*a_test(), &t, dst()).await.unwrap_err();
        assert!(matches!(err, EndpointError::Resolve { ref host, .. } if host == "missing.test"));
        assert_eq!(err.flag(), Some(ResponseFlag::NoHealthyUpstream));
    }

    #[tokio::test]
    async fn static_uses_endpoint_ips_in_order() {
        let t = target(
            Resolution::Static,
            vec![ep("127.0.0.2", &[]), ep("::1", &[("http", 81)])],
            None,
        );
        let got = select(&*a_test(), &t, dst()).await.unwrap();
        assert_eq!(
            got,
            vec!["127.0.0.2:80".parse().unwrap(), "[::1]:81".parse().unwrap()]
        );
    }

    #[tokio::test]
    async fn static_without_endpoints_has_no_address() {
        let err = select(&*a_test(), &target(Resolution::Static, vec![], None), dst())
            .await
            .unwrap_err();
        assert!(matches!(err, EndpointError::NoAddress { port: 80, .. }));
    }

    #[tokio::test]
    async fn dynamic_dns_wildcards_resolve_the_requested_name_they_cover() {
        let mut t = target(Resolution::DynamicDns, vec![], Some(8080));
        Arc::get_mut(&mut t.service).unwrap().host = "*.test".into();
        let got = select_for_host(&*a_test(), &t, dst(), Some("a.test"))
            .await
            .unwrap();
        assert_eq!(got[1], "127.0.0.1:8080".parse().unwrap());
        for outside in [Some("a.other"), Some("test"), None] {
            let err = select_for_host(&*a_test(), &t, dst(), outside)
                .await
                .unwrap_err();
            assert!(
                matches!(err, EndpointError::NotCovered { .. }),
                "{outside:?}: {err}"
            );
        }
        // A plain host ignores the request's name.
        let plain = target(Resolution::Dns, vec![], None);
        let got = select_for_host(&*a_test(), &plain, dst(), Some("evil.example"))
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn upstream_names() {
        assert_eq!(
            upstream_name(&HostName::new("a.com"), Some("b.com")).unwrap(),
            "a.com"
        );
        assert_eq!(
            upstream_name(&HostName::new("*.a.com"), Some("X.y.A.com.")).unwrap(),
            "x.y.a.com"
        );
        assert!(upstream_name(&HostName::new("*.a.com"), Some("a.com")).is_err());
        assert!(upstream_name(&HostName::new("*.a.com"), Some("xa.com")).is_err());
    }

    #[tokio::test]
    async fn none_goes_to_the_original_destination() {
        let got = select(
            &*a_test(),
            &target(Resolution::None, vec![], Some(8443)),
            dst(),
        )
        .await
        .unwrap();
        assert_eq!(got, vec!["10.1.2.3:8443".parse().unwrap()]);
    }
}

//! A request is about the service it was captured for: its `Host` (or
//! `:authority`, or the authority of an absolute-form URI) must name that
//! service — its host, a name under its `*.` wildcard host, or the address
//! the workload connected to (as Istio lists a service's VIP among its
//! virtual host's domains) — with or without the port the workload
//! connected to. Anything else is Envoy's
//! `404` with flag `NR` (no virtual host of the service matches), so a
//! request can never be routed to one service while authorized as
//! another. Two `Host` headers, or a `Host` that disagrees with
//! `:authority`, are a malformed request: `400` (RFC 9110 §7.2,
//! RFC 9113 §8.3.1).

use std::net::{IpAddr, SocketAddr};

use http::uri::Authority;
use http::{header, request};

use super::pipeline::{Exchange, RequestStage, StageFlow};
use super::reply::LocalReply;
use crate::config::snapshot::Service;
use crate::net::HostName;

/// The first request stage of the waypoint: the Host check.
#[derive(Debug, Clone, Copy)]
pub struct ServiceHost;

impl RequestStage for ServiceHost {
    fn on_request(&self, exchange: &mut Exchange, head: &mut request::Parts) -> StageFlow {
        let service = &exchange.target.service;
        match check(head, service, exchange.conn.orig_dst) {
            Ok(()) => StageFlow::Continue,
            Err(refusal) => {
                tracing::debug!(src = %exchange.conn.src, service = %service.host, reason = %refusal, "request refused");
                StageFlow::Respond(refusal.reply())
            }
        }
    }
}

/// Why a request's host was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRefusal {
    /// More than one `Host` header.
    #[error("{0} Host headers")]
    Several(usize),
    /// No `Host` and no authority.
    #[error("no Host header")]
    Missing,
    /// Not a valid `host[:port]`.
    #[error("Host {0:?} is not a valid authority")]
    Malformed(String),
    /// `Host` and `:authority` (or the absolute URI) name different places.
    #[error("Host {host:?} disagrees with the request's authority {authority:?}")]
    Disagree {
        /// The `Host` header.
        host: String,
        /// `:authority` or the URI's authority.
        authority: String,
    },
    /// The name is not one of the service's.
    #[error("{name:?} is not a name of service {service} port {port}")]
    OtherService {
        /// What the request named.
        name: String,
        /// The service it was captured for.
        service: String,
        /// The port the workload connected to.
        port: u16,
    },
}

impl HostRefusal {
    /// `400` (`DPE`) for a malformed request, `404` (`NR`) for another service.
    pub fn reply(&self) -> LocalReply {
        match self {
            HostRefusal::OtherService { .. } => LocalReply::no_virtual_host(),
            _ => LocalReply::bad_request(),
        }
    }
}

/// Checks that `head` names `service` as connected to at `connected` (a
/// VIP and port of it).
pub fn check(
    head: &request::Parts,
    service: &Service,
    connected: SocketAddr,
) -> Result<(), HostRefusal> {
    let named = requested_authority(head)?;
    let authority: Authority = named
        .parse()
        .map_err(|_| HostRefusal::Malformed(named.to_string()))?;
    let port = connected.port();
    let other = || HostRefusal::OtherService {
        name: named.to_string(),
        service: service.host.to_string(),
        port,
    };
    if authority.port_u16().is_some_and(|p| p != port) || authority.as_str().ends_with(':') {
        return Err(other());
    }
    let host = authority.host();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let names_service = match literal.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip == connected.ip().to_canonical() || service.vips.contains(&ip)
        }
        Err(_) => service.host.covers(&HostName::new(host)),
    };
    if !names_service {
        return Err(other());
    }
    Ok(())
}

/// The one authority the request names: its single `Host` header, or its
/// `:authority` (absolute-form URI), which must agree when both are given.
fn requested_authority(head: &request::Parts) -> Result<&str, HostRefusal> {
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    let extra = hosts.count();
    if extra > 0 {
        return Err(HostRefusal::Several(extra + 1));
    }
    let host = match host {
        Some(value) => Some(value.to_str().map_err(|_| {
            HostRefusal::Malformed(String::from_utf8_lossy(value.as_bytes()).into())
        })?),
        None => None,
    };
    match (host, head.uri.authority()) {
        (Some(host), Some(authority)) if !same_authority(host, authority.as_str()) => {
            Err(HostRefusal::Disagree {
                host: host.to_string(),
                authority: authority.to_string(),
            })
        }
        (_, Some(authority)) => Ok(authority.as_str()),
        (Some(host), None) => Ok(host),
        (None, None) => Err(HostRefusal::Missing),
    }
}

/// Host names compare without case.
fn same_authority(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, hosts: &[&str]) -> request::Parts {
        let mut builder = http::Request::get(uri);
        for h in hosts {
            builder = builder.header(header::HOST, *h);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn refusal(uri: &str, hosts: &[&str], service: &str) -> Option<HostRefusal> {
        let service = Service {
            namespace: "ns".into(),
            name: "se".into(),
            host: service.into(),
            vips: vec!["240.240.0.2".parse().unwrap(), "2001:2::2".parse().unwrap()],
            ports: vec![],
            resolution: crate::config::snapshot::Resolution::Dns,
            endpoints: vec![],
            waypoint: crate::config::snapshot::WaypointBinding::None,
        };
        let connected = "240.240.0.2:80".parse().unwrap();
        check(&head(uri, hosts), &service, connected).err()
    }

    #[test]
    fn names_of_the_service_pass_with_or_without_its_port() {
        for (uri, hosts) in [
            ("/get", vec!["httpbin.org"]),
            ("/get", vec!["HTTPBIN.org:80"]),
            ("http://httpbin.org/get", vec![]),
            ("http://httpbin.org:80/get", vec!["httpbin.org:80"]),
        ] {
            assert_eq!(refusal(uri, &hosts, "httpbin.org"), None, "{uri} {hosts:?}");
        }
        assert_eq!(refusal("/", &["a.example.test"], "*.example.test"), None);
        assert_eq!(
            refusal("/", &["a.b.example.test:80"], "*.example.test"),
            None
        );
        // The service's own addresses, as Istio's virtual host domains list them.
        assert_eq!(refusal("/", &["240.240.0.2"], "httpbin.org"), None);
        assert_eq!(refusal("/", &["[2001:2::2]:80"], "httpbin.org"), None);
    }

    #[test]
    fn other_names_and_ports_are_404_nr() {
        for (uri, hosts, service) in [
            ("/get", vec!["httpbin.org"], "other.test"),
            ("/get", vec!["httpbin.org:8080"], "httpbin.org"),
            ("/get", vec!["httpbin.org:"], "httpbin.org"),
            ("/get", vec!["httpbin.org."], "httpbin.org"),
            ("/get", vec!["www.httpbin.org"], "httpbin.org"),
            ("/get", vec!["example.test"], "*.example.test"),
            ("/get", vec!["a.example.test.evil"], "*.example.test"),
            ("/get", vec!["240.240.0.3"], "httpbin.org"),
            ("/get", vec!["240.240.0.2:81"], "httpbin.org"),
            ("http://evil.test/get", vec![], "httpbin.org"),
        ] {
            let r = refusal(uri, &hosts, service).expect("refused");
            assert!(
                matches!(r, HostRefusal::OtherService { .. }),
                "{uri} {hosts:?}: {r}"
            );
            let reply = r.reply();
            assert_eq!(reply.status, 404);
            assert_eq!(reply.flag, Some(crate::proxy::ResponseFlag::NoRoute));
        }
    }

    #[test]
    fn several_missing_or_disagreeing_hosts_are_400() {
        let cases = [
            ("/get", vec!["httpbin.org", "httpbin.org"]),
            ("/get", vec!["httpbin.org", "evil.test"]),
            ("/get", vec![]),
            ("http://httpbin.org/get", vec!["evil.test"]),
            ("http://evil.test/get", vec!["httpbin.org"]),
            ("/get", vec!["httpbin.org/x"]),
        ];
        for (uri, hosts) in cases {
            let r = refusal(uri, &hosts, "httpbin.org").expect("refused");
            assert!(
                !matches!(r, HostRefusal::OtherService { .. }),
                "{uri} {hosts:?}: {r}"
            );
            let reply = r.reply();
            assert_eq!(reply.status, 400, "{uri} {hosts:?}");
            assert_eq!(
                reply.flag,
                Some(crate::proxy::ResponseFlag::DownstreamProtocolError)
            );
        }
    }
}

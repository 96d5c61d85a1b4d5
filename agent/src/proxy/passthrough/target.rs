//! Where a passthrough connection goes: the SNI must be a name of the
//! service the workload connected to, then the service's VirtualService
//! `tls` routes (by `sniHosts`) may send it to another service port.

use super::PassthroughError;
use crate::proxy::context::{ConnectionContext, Destination, UpstreamTarget};
use crate::route::{pick_weighted, L4View};

/// Whether `sni` is a name of `service_host`: the host itself, or for
/// `*.suffix` a name below the suffix (not the suffix itself).
pub fn covers(service_host: &str, sni: &str) -> bool {
    match service_host.strip_prefix('*') {
        Some(suffix) => {
            sni.len() > suffix.len()
                && sni
                    .get(sni.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
        None => service_host.eq_ignore_ascii_case(sni),
    }
}

/// The service port `sni` is carried to, by the routes of `in_force`'s config.
/// Refuses names outside the connected service (a workload must not steer
/// the waypoint to an arbitrary host), and names its `tls` routes leave
/// unrouted.
pub fn resolve(
    conn: &ConnectionContext,
    in_force: &Destination,
    connected: &UpstreamTarget,
    sni: &str,
) -> Result<UpstreamTarget, PassthroughError> {
    let host = &connected.service.host;
    if !covers(host, sni) {
        return Err(PassthroughError::NotCovered {
            service: host.clone(),
            sni: sni.to_string(),
        });
    }
    let routes = &in_force.snapshot.routes;
    let view = L4View {
        sni: Some(sni),
        destination: conn.orig_dst.ip(),
        port: conn.orig_dst.port(),
        source_namespace: Some(&conn.src_identity.namespace),
    };
    let Some(route) = routes.route_tls(host, &view) else {
        if routes.has_tls_routes(host) {
            return Err(PassthroughError::NoRouteMatched {
                service: host.clone(),
                sni: sni.to_string(),
            });
        }
        return Ok(connected.clone());
    };
    let Some(dest) = pick_weighted(&route.destinations, rand::random()) else {
        return Ok(connected.clone());
    };
    let port = dest.port.unwrap_or(connected.port.number);
    if dest.host.eq_ignore_ascii_case(host) && port == connected.port.number {
        return Ok(connected.clone());
    }
    let unknown = || PassthroughError::UnknownDestination {
        host: dest.host.clone(),
        port,
    };
    let service = in_force
        .snapshot
        .by_host
        .get(&dest.host.to_ascii_lowercase())
        .and_then(|s| s.first())
        .ok_or_else(unknown)?
        .clone();
    let port = service.port(port).ok_or_else(unknown)?.clone();
    Ok(UpstreamTarget { service, port })
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_service_covers_its_own_names_only() {
        assert!(covers("httpbin.org", "httpbin.org"));
        assert!(covers("httpbin.org", "HTTPBIN.org"));
        assert!(!covers("httpbin.org", "evil.test"));
        assert!(!covers("httpbin.org", "www.httpbin.org"));
        assert!(covers("*.example.test", "a.example.test"));
        assert!(covers("*.example.test", "a.b.Example.Test"));
        assert!(!covers("*.example.test", "example.test"));
        assert!(!covers("*.example.test", "aexample.test"));
        assert!(!covers("*.example.test", "a.example.test.evil"));
    }
}

//! Where a passthrough connection goes: the SNI must be a name of the
//! service the workload connected to, then the service's VirtualService
//! `tls` routes (by `sniHosts`) may send it to another service port.

use super::PassthroughError;
use crate::net::HostName;
use crate::proxy::context::{ConnectionContext, ResolvedDestination, UpstreamTarget};
use crate::route::{pick_weighted, L4View};

/// The service port `sni` is carried to, by the routes of `in_force`'s config.
/// Refuses names outside the connected service (a workload must not steer
/// the waypoint to an arbitrary host), and names its `tls` routes leave
/// unrouted.
pub fn resolve(
    conn: &ConnectionContext,
    in_force: &ResolvedDestination,
    connected: &UpstreamTarget,
    sni: &HostName,
) -> Result<UpstreamTarget, PassthroughError> {
    let host = &connected.service.host;
    if !host.covers(sni) {
        return Err(PassthroughError::NotCovered {
            service: host.to_string(),
            sni: sni.to_string(),
        });
    }
    let routes = &in_force.snapshot.routes;
    let view = L4View {
        sni: Some(sni.as_str()),
        destination: conn.orig_dst.ip(),
        port: conn.orig_dst.port(),
        source_namespace: Some(&conn.src_identity.namespace),
    };
    let Some(route) = routes.route_tls(host, &view) else {
        if routes.has_tls_routes(host) {
            return Err(PassthroughError::NoRouteMatched {
                service: host.to_string(),
                sni: sni.to_string(),
            });
        }
        return Ok(connected.clone());
    };
    let Some(dest) = pick_weighted(&route.destinations, rand::random()) else {
        return Ok(connected.clone());
    };
    let port = dest.port.unwrap_or(connected.port.number);
    if dest.host == *host && port == connected.port.number {
        return Ok(connected.clone());
    }
    let unknown = || PassthroughError::UnknownDestination {
        host: dest.host.to_string(),
        port,
    };
    let service = in_force
        .snapshot
        .by_host
        .get(&dest.host)
        .and_then(|s| s.first())
        .ok_or_else(unknown)?
        .clone();
    let port = service.port(port).ok_or_else(unknown)?.clone();
    Ok(UpstreamTarget { service, port })
}

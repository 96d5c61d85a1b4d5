//! Where a connection goes, decided once from its [`ResolvedDestination`]: refused,
//! served here (HTTP, TLS passthrough or TCP), or tunnelled to its waypoint
//! when that waypoint runs elsewhere.

use std::net::SocketAddr;

use super::context::{ResolvedDestination, UpstreamTarget, WaypointPeer};
use super::flags::ResponseFlag;
use super::outcome::Flagged;
use super::passthrough;
use crate::config::snapshot::{WaypointBinding, WaypointRef};

/// Why a connection was not carried anywhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The address is not a VIP of any service.
    #[error("no service has address {0}")]
    UnknownAddress(std::net::IpAddr),
    /// The service does not declare the port.
    #[error("service {host} has no port {port}")]
    UndeclaredPort {
        /// The service host.
        host: String,
        /// The port the workload connected to.
        port: u16,
    },
    /// The service is bound to a waypoint that does not exist.
    #[error("service {host} is bound to waypoint {waypoint}, which does not exist")]
    WaypointMissing {
        /// The service host.
        host: String,
        /// The waypoint named by its label.
        waypoint: WaypointRef,
    },
}

impl Flagged for DispatchError {
    fn flag(&self) -> Option<ResponseFlag> {
        Some(match self {
            DispatchError::UnknownAddress(_) | DispatchError::UndeclaredPort { .. } => {
                ResponseFlag::NoRoute
            }
            DispatchError::WaypointMissing { .. } => ResponseFlag::WaypointMissing,
        })
    }
}

/// The path a connection takes.
#[derive(Debug)]
pub enum Route {
    /// Served by the waypoint's HTTP pipeline.
    Http(UpstreamTarget),
    /// TLS carried by its SNI, not terminated.
    Passthrough(UpstreamTarget),
    /// Bytes copied to the upstream.
    Tcp(UpstreamTarget),
    /// Bound to a waypoint that runs elsewhere: one HBONE tunnel to it,
    /// which does the L4/L7 work.
    Tunnel(UpstreamTarget, RemoteWaypoint),
}

/// A waypoint that runs elsewhere, and where it listens for HBONE.
#[derive(Clone, Debug)]
pub struct RemoteWaypoint {
    /// The waypoint and the identity it must present.
    pub peer: WaypointPeer,
    /// Its HBONE address.
    pub addr: SocketAddr,
}

impl Route {
    /// The service port the connection is for.
    pub fn target(&self) -> &UpstreamTarget {
        match self {
            Route::Http(t) | Route::Passthrough(t) | Route::Tcp(t) | Route::Tunnel(t, _) => t,
        }
    }
}

/// The path, in `dest`'s config, of a connection captured on this node to
/// `orig_dst`: a service bound to a remote waypoint is tunnelled there.
pub fn route(dest: &ResolvedDestination, orig_dst: SocketAddr) -> Result<Route, DispatchError> {
    let here = route_here(dest, orig_dst)?;
    let remote = dest.waypoint.as_ref().and_then(|w| Some((w, w.remote?)));
    Ok(match remote {
        Some((peer, addr)) => Route::Tunnel(
            here.target().clone(),
            RemoteWaypoint {
                peer: peer.clone(),
                addr,
            },
        ),
        None => here,
    })
}

/// The path, in `dest`'s config, of a connection to `orig_dst` served by
/// this process (never a tunnel: at the waypoint itself).
pub fn route_here(
    dest: &ResolvedDestination,
    orig_dst: SocketAddr,
) -> Result<Route, DispatchError> {
    let service = dest
        .service
        .as_ref()
        .ok_or(DispatchError::UnknownAddress(orig_dst.ip()))?;
    let port = dest
        .port(orig_dst.port())
        .ok_or_else(|| DispatchError::UndeclaredPort {
            host: service.host.to_string(),
            port: orig_dst.port(),
        })?;
    let target = UpstreamTarget {
        service: service.clone(),
        port: port.clone(),
    };
    match &service.waypoint {
        WaypointBinding::Missing(waypoint) => Err(DispatchError::WaypointMissing {
            host: service.host.to_string(),
            waypoint: waypoint.clone(),
        }),
        WaypointBinding::Bound(_) if port.protocol.is_http() => Ok(Route::Http(target)),
        WaypointBinding::Bound(_) if passthrough::handles(port.protocol) => {
            Ok(Route::Passthrough(target))
        }
        WaypointBinding::Bound(_) | WaypointBinding::None => Ok(Route::Tcp(target)),
    }
}

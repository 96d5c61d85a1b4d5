//! Per-connection facts: who connected and where to, fixed at accept time;
//! and what that destination means in a config snapshot ([`ResolvedDestination`]),
//! worked out at accept and again for every request and config change, so
//! decisions follow the config in force now. [`ConnectionContext::route`]
//! is the connection's path in such a destination.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::route::{self, DispatchError, Route};
use crate::config::snapshot::{Service, ServicePort, Snapshot, WaypointBinding, WaypointRef};
use crate::hbone::client::hbone_addr;
use crate::identity::{Identity, WorkloadInfo};
use crate::net::HostName;

/// The waypoint serving a connection, as the access log's `dst.*` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaypointPeer {
    /// The waypoint Gateway.
    pub reference: WaypointRef,
    /// The identity it presents (`spiffe://<td>/ns/<ns>/sa/<sa>`).
    pub identity: Identity,
    /// Where it listens for HBONE when it runs elsewhere (its Gateway has
    /// `spec.addresses`); `None`: this process serves it.
    pub remote: Option<SocketAddr>,
}

/// A service port traffic is sent to: the unit endpoint selection works on.
#[derive(Clone, Debug)]
pub struct UpstreamTarget {
    /// The service (one ServiceEntry host).
    pub service: Arc<Service>,
    /// The declared port.
    pub port: ServicePort,
}

impl UpstreamTarget {
    /// Whether two targets reach the same place by the same definition (an
    /// upstream connection made for one may carry requests for the other;
    /// not once a config change moved the service's endpoints or ports).
    pub fn same_as(&self, other: &UpstreamTarget) -> bool {
        let same_service =
            Arc::ptr_eq(&self.service, &other.service) || *self.service == *other.service;
        same_service && self.port == other.port
    }
}

/// What a connection's original destination is in one config snapshot:
/// the service owning the address, and the waypoint that service is bound to.
#[derive(Debug)]
pub struct ResolvedDestination {
    /// The config this was worked out from.
    pub snapshot: Arc<Snapshot>,
    /// The service owning the original destination's address, if any.
    pub service: Option<Arc<Service>>,
    /// The waypoint the service is bound to, when that waypoint exists.
    pub waypoint: Option<WaypointPeer>,
}

impl ResolvedDestination {
    /// Looks `orig_dst` up in `snapshot`.
    pub fn resolve(snapshot: Arc<Snapshot>, trust_domain: &str, orig_dst: SocketAddr) -> Self {
        let service = snapshot.service_for_vip(orig_dst.ip()).cloned();
        let waypoint = match service.as_ref().map(|s| &s.waypoint) {
            Some(WaypointBinding::Bound(reference)) => {
                // Istio deploys a waypoint under a service account named
                // after its Gateway; the snapshot may say otherwise.
                let known = snapshot.waypoints.get(reference);
                let service_account = known
                    .map(|w| w.service_account.clone())
                    .unwrap_or_else(|| reference.name.clone());
                Some(WaypointPeer {
                    remote: known.and_then(|w| w.address).map(hbone_addr),
                    reference: reference.clone(),
                    identity: Identity {
                        trust_domain: trust_domain.to_string(),
                        namespace: reference.namespace.clone(),
                        service_account,
                    },
                })
            }
            _ => None,
        };
        ResolvedDestination {
            snapshot,
            service,
            waypoint,
        }
    }

    /// The declared service port `number`.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.service.as_ref()?.port(number)
    }
}

/// How a connection reached this proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Captured from a workload on this node: a service bound to a remote
    /// waypoint is tunnelled there.
    Captured,
    /// Through an HBONE tunnel to a waypoint this process serves: served
    /// here, whatever address its Gateway has.
    Tunnelled,
}

/// Everything known about one connection when it was accepted.
#[derive(Debug)]
pub struct ConnectionContext {
    /// Captured here, or tunnelled to this waypoint.
    pub arrival: Arrival,
    /// The workload's address (its IP and client port).
    pub src: SocketAddr,
    /// The workload that opened the connection.
    pub workload: Arc<WorkloadInfo>,
    /// Its SPIFFE identity.
    pub src_identity: Identity,
    /// Where the workload connected (a service VIP and port).
    pub orig_dst: SocketAddr,
    /// The destination in the config in force when the connection was
    /// accepted; the connection is closed when a later config gives it
    /// another path ([`crate::proxy::recheck`]).
    pub accepted: Arc<ResolvedDestination>,
    /// When the connection was accepted.
    pub started: Instant,
    /// The TLS server name of a passthrough connection, set once its
    /// ClientHello has been read (policy and the access log use it).
    pub sni: OnceLock<HostName>,
}

impl ConnectionContext {
    /// A connection captured from `workload`, its original destination
    /// looked up in `snapshot`.
    pub fn new(
        snapshot: Arc<Snapshot>,
        trust_domain: &str,
        workload: Arc<WorkloadInfo>,
        src: SocketAddr,
        orig_dst: SocketAddr,
    ) -> Self {
        ConnectionContext {
            arrival: Arrival::Captured,
            src,
            src_identity: workload.identity(trust_domain),
            workload,
            orig_dst,
            accepted: Arc::new(ResolvedDestination::resolve(
                snapshot,
                trust_domain,
                orig_dst,
            )),
            started: Instant::now(),
            sni: OnceLock::new(),
        }
    }

    /// The same connection, arrived through an HBONE tunnel.
    pub fn tunnelled(self) -> Self {
        ConnectionContext {
            arrival: Arrival::Tunnelled,
            ..self
        }
    }

    /// The connection's path in `dest` (its destination in some config).
    pub fn route(&self, dest: &ResolvedDestination) -> Result<Route, DispatchError> {
        match self.arrival {
            Arrival::Captured => route::route(dest, self.orig_dst),
            Arrival::Tunnelled => route::route_here(dest, self.orig_dst),
        }
    }

    /// The service the connection was accepted for.
    pub fn service(&self) -> Option<&Arc<Service>> {
        self.accepted.service.as_ref()
    }

    /// The waypoint serving the connection (as accepted).
    pub fn waypoint(&self) -> Option<&WaypointPeer> {
        self.accepted.waypoint.as_ref()
    }

    /// The connection's destination in `snapshot` (the accepted one when
    /// it is the snapshot the connection was accepted on). The waypoint's
    /// identity is in the source's trust domain, as at accept.
    pub fn destination_in(&self, snapshot: Arc<Snapshot>) -> Arc<ResolvedDestination> {
        if Arc::ptr_eq(&snapshot, &self.accepted.snapshot) {
            return self.accepted.clone();
        }
        let trust_domain = &self.src_identity.trust_domain;
        Arc::new(ResolvedDestination::resolve(
            snapshot,
            trust_domain,
            self.orig_dst,
        ))
    }

    /// The TLS server name the workload sent, once known.
    pub fn sni(&self) -> Option<&str> {
        self.sni.get().map(HostName::as_str)
    }

    /// The declared service port the workload connected to (as accepted).
    pub fn service_port(&self) -> Option<&ServicePort> {
        self.accepted.port(self.orig_dst.port())
    }
}

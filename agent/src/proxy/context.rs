//! Per-connection facts: who connected, where to, and which service and
//! waypoint that maps to. Fixed at accept time; read by every stage and by
//! the access log.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::config::snapshot::{Service, ServicePort, Snapshot, WaypointBinding, WaypointRef};
use crate::workload::identity::{Identity, WorkloadInfo};

/// The waypoint serving a connection, as the access log's `dst.*` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaypointPeer {
    /// The waypoint Gateway.
    pub reference: WaypointRef,
    /// The identity it presents (`spiffe://<td>/ns/<ns>/sa/<sa>`).
    pub identity: Identity,
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
    /// Whether two targets reach the same place (an upstream connection made
    /// for one may carry requests for the other).
    pub fn same_as(&self, other: &UpstreamTarget) -> bool {
        self.service.namespace == other.service.namespace
            && self.service.name == other.service.name
            && self.service.host == other.service.host
            && self.port.number == other.port.number
    }
}

/// Everything known about one captured connection when it was accepted.
#[derive(Debug)]
pub struct ConnectionContext {
    /// The workload's address (its IP and client port).
    pub src: SocketAddr,
    /// The workload that opened the connection.
    pub workload: Arc<WorkloadInfo>,
    /// Its SPIFFE identity.
    pub src_identity: Identity,
    /// Where the workload connected (a service VIP and port).
    pub orig_dst: SocketAddr,
    /// The config in force when the connection was accepted.
    pub snapshot: Arc<Snapshot>,
    /// The service owning `orig_dst`'s address, if any.
    pub service: Option<Arc<Service>>,
    /// The waypoint the service is bound to, when that waypoint exists.
    pub waypoint: Option<WaypointPeer>,
    /// When the connection was accepted.
    pub started: Instant,
    /// The TLS server name of a passthrough connection, set once its
    /// ClientHello has been read (policy and the access log use it).
    pub sni: OnceLock<String>,
}

impl ConnectionContext {
    /// Looks the original destination up in `snapshot`.
    pub fn new(
        snapshot: Arc<Snapshot>,
        trust_domain: &str,
        workload: Arc<WorkloadInfo>,
        src: SocketAddr,
        orig_dst: SocketAddr,
    ) -> Self {
        let service = snapshot.service_for_vip(orig_dst.ip()).cloned();
        let waypoint = match service.as_ref().map(|s| &s.waypoint) {
            Some(WaypointBinding::Bound(reference)) => {
                // Istio deploys a waypoint under a service account named
                // after its Gateway; the snapshot may say otherwise.
                let service_account = snapshot
                    .waypoints
                    .get(reference)
                    .map(|w| w.service_account.clone())
                    .unwrap_or_else(|| reference.name.clone());
                Some(WaypointPeer {
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
        ConnectionContext {
            src,
            src_identity: workload.identity(trust_domain),
            workload,
            orig_dst,
            snapshot,
            service,
            waypoint,
            started: Instant::now(),
            sni: OnceLock::new(),
        }
    }

    /// The TLS server name the workload sent, once known.
    pub fn sni(&self) -> Option<&str> {
        self.sni.get().map(String::as_str)
    }

    /// The declared service port the workload connected to.
    pub fn service_port(&self) -> Option<&ServicePort> {
        self.service.as_ref()?.port(self.orig_dst.port())
    }
}

//! The waypoint side of HBONE: each CONNECT stream is validated, its target
//! decided, answered as ztunnel answers (400 bad request or destination,
//! 401 RBAC deny, 503 upstream failure, 200 only once the upstream side is
//! ready), then run through the proxy path a captured connection takes,
//! with the peer's SPIFFE identity as source. An open L4 stream is checked
//! again on every config change and closed when its service goes or policy
//! now denies it ([`super::recheck`]).

use std::net::SocketAddr;
use std::sync::Arc;

use http::StatusCode;

use super::context::{ConnectionContext, ResolvedDestination, UpstreamTarget};
use super::counted::{ByteCounters, Counted};
use super::flags::ResponseFlag;
use super::metrics::Reporter;
use super::outcome::{ConnectionOutcome, Failure, Flagged};
use super::recheck::{self, Revoked};
use super::record::ConnectionRecord;
use super::route::{DispatchError, Route};
use super::{http as l7, l4, passthrough, ProxyContext};
use crate::config::snapshot::{WaypointBinding, WaypointRef};
use crate::hbone::request::{self, BadRequest};
use crate::hbone::{Connect, Handler, Peer};
use crate::identity::{Identity, WorkloadInfo};

/// Which waypoint an HBONE connection is served as.
#[derive(Clone, Debug)]
pub enum Serves {
    /// Always this one (`egret waypoint --name`).
    Waypoint(WaypointRef),
    /// The waypoint whose Gateway `spec.addresses` holds the address the
    /// peer connected to (a node agent hosting a remote-addressed waypoint).
    ByAddress,
}

/// Why a stream's target was refused before any upstream was tried.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a CONNECT to an `ip:port`.
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    /// The address is no service this waypoint serves.
    #[error("{target} is not a service of waypoint {waypoint}")]
    NotServed {
        /// The requested target.
        target: SocketAddr,
        /// The waypoint reached.
        waypoint: WaypointRef,
    },
    /// The service has no such port, or cannot be routed.
    #[error(transparent)]
    Route(#[from] DispatchError),
}

impl Flagged for TargetError {
    fn flag(&self) -> Option<ResponseFlag> {
        match self {
            TargetError::Route(d) => d.flag(),
            TargetError::BadRequest(_) | TargetError::NotServed { .. } => {
                Some(ResponseFlag::NoRoute)
            }
        }
    }
}

/// The HBONE server's handler: streams in, proxy path out.
pub struct Inbound {
    proxy: Arc<ProxyContext>,
    serves: Serves,
}

impl Handler for Inbound {
    type Scope = WaypointRef;

    fn scope(&self, local: SocketAddr) -> Option<(WaypointRef, Identity)> {
        let waypoint = self.waypoint_for(local)?;
        let identity = self.identity_of(&waypoint);
        Some((waypoint, identity))
    }

    async fn serve(self: Arc<Self>, connect: Connect<WaypointRef>) {
        self.stream(connect).await
    }
}

impl Inbound {
    /// Streams fed into `proxy`, served as `serves` says.
    pub fn new(proxy: Arc<ProxyContext>, serves: Serves) -> Self {
        Inbound { proxy, serves }
    }

    /// One CONNECT stream, answered and proxied; always logged once.
    async fn stream(&self, connect: Connect<WaypointRef>) {
        let target = match connect.target() {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(peer = %connect.peer.addr, error = %e, "CONNECT refused");
                connect.refuse(e.status());
                return;
            }
        };
        let conn = Arc::new(self.context(&connect, target));
        let metrics = self.proxy.metrics.clone();
        let mut record = ConnectionRecord::open(metrics, conn.clone(), Reporter::Waypoint);
        let held = self.proxy.admission.admit(&conn.workload);
        let outcome = match (held.as_ref(), served(&conn, &conn.accepted, &connect.scope)) {
            (Err(refused), _) => {
                connect.refuse(StatusCode::SERVICE_UNAVAILABLE);
                self.proxy.metrics.connection_rejected(refused.limit());
                ConnectionOutcome::refused(Failure::of(refused))
            }
            (Ok(_), Err(e)) => {
                connect.refuse(StatusCode::BAD_REQUEST);
                ConnectionOutcome::refused(Failure::of(&e))
            }
            (Ok(_), Ok(route)) => match self.proxy.authorizer.connection(&conn, &conn.accepted) {
                Err(denied) => {
                    connect.refuse(StatusCode::UNAUTHORIZED);
                    ConnectionOutcome::refused(Failure::of(&denied))
                }
                Ok(()) => self.open(&conn, route, connect, record.bytes()).await,
            },
        };
        drop(held);
        record.end(outcome);
    }

    /// The per-connection facts: the source is the verified peer identity
    /// at the address `forwarded: for=` names (the workload behind it).
    fn context(&self, connect: &Connect<WaypointRef>, target: SocketAddr) -> ConnectionContext {
        let headers = connect.headers();
        let peer: &Peer = &connect.peer;
        let src = request::forwarded_for(headers).unwrap_or(peer.addr);
        let workload = Arc::new(WorkloadInfo {
            name: request::baggage_workload_name(headers)
                .unwrap_or_default()
                .to_string(),
            namespace: peer.identity.namespace.clone(),
            service_account: peer.identity.service_account.clone(),
            ip: src.ip(),
            netns_cookie: 0,
        });
        let snapshot = self.proxy.snapshots.borrow().clone();
        let trust_domain = &peer.identity.trust_domain;
        ConnectionContext::new(snapshot, trust_domain, workload, src, target).tunnelled()
    }

    /// Connects the upstream side (L4) or readies the L7 server, answers
    /// 200 or 503, and carries the stream until it ends.
    async fn open(
        &self,
        conn: &Arc<ConnectionContext>,
        route: Route,
        connect: Connect<WaypointRef>,
        bytes: &Arc<ByteCounters>,
    ) -> ConnectionOutcome {
        match route {
            Route::Http(target) => {
                // The L7 server connects upstream per request; the tunnel is
                // ready as soon as the route is known (as Envoy does).
                let Some(stream) = connect.accept() else {
                    return ConnectionOutcome::default();
                };
                let stream = Counted::new(stream, bytes.clone());
                l7::serve(self.proxy.clone(), conn.clone(), target, stream).await
            }
            Route::Passthrough(target) => {
                // The ClientHello comes only after the 200; policy on its
                // SNI closes the stream if it denies.
                let Some(stream) = connect.accept() else {
                    return ConnectionOutcome::default();
                };
                let stream = Counted::new(stream, bytes.clone());
                let passed = passthrough::serve(&self.proxy, conn, &target, stream);
                recheck::hold(&self.proxy, conn, passed, |dest| {
                    passthrough::recheck(&self.proxy, conn, dest)
                })
                .await
            }
            Route::Tcp(target) | Route::Tunnel(target, _) => {
                let proxied = self.tcp(conn, &target, connect, bytes);
                recheck::hold(&self.proxy, conn, proxied, |dest| {
                    self.proxy
                        .authorizer
                        .connection(conn, dest)
                        .map_err(|d| Revoked::denied(dest, &d))
                })
                .await
            }
        }
    }

    /// Connects upstream, then answers 200 and carries the stream (or 503).
    async fn tcp(
        &self,
        conn: &ConnectionContext,
        target: &UpstreamTarget,
        connect: Connect<WaypointRef>,
        bytes: &Arc<ByteCounters>,
    ) -> ConnectionOutcome {
        let resolver = self.proxy.resolver.as_ref();
        let (upstream, addr) = match l4::connect(resolver, conn, target, None).await {
            Ok(c) => c,
            Err(e) => {
                connect.refuse(StatusCode::SERVICE_UNAVAILABLE);
                return ConnectionOutcome::refused(Failure::of(&e));
            }
        };
        let Some(stream) = connect.accept() else {
            // The peer went away before the answer: nothing to carry.
            let mut outcome = ConnectionOutcome::default();
            outcome.upstream = Some(addr);
            return outcome;
        };
        l4::carry_tunnel(upstream, Counted::new(stream, bytes.clone()), addr).await
    }

    fn waypoint_for(&self, local: SocketAddr) -> Option<WaypointRef> {
        match &self.serves {
            Serves::Waypoint(w) => Some(w.clone()),
            Serves::ByAddress => {
                let local = local.ip().to_canonical();
                let snapshot = self.proxy.snapshots.borrow().clone();
                let found = snapshot
                    .waypoints
                    .values()
                    .find(|w| w.address == Some(local))
                    .map(|w| w.reference.clone());
                found
            }
        }
    }

    /// The identity a waypoint presents: its namespace and service account
    /// (named after the Gateway, as Istio deploys it).
    fn identity_of(&self, waypoint: &WaypointRef) -> Identity {
        let snapshot = self.proxy.snapshots.borrow().clone();
        let service_account = snapshot
            .waypoints
            .get(waypoint)
            .map(|w| w.service_account.clone())
            .unwrap_or_else(|| waypoint.name.clone());
        Identity {
            trust_domain: self.proxy.trust_domain.clone(),
            namespace: waypoint.namespace.clone(),
            service_account,
        }
    }
}

/// The route, in `dest`'s config, of a stream whose target must be a
/// service bound to `waypoint`.
pub fn served(
    conn: &ConnectionContext,
    dest: &ResolvedDestination,
    waypoint: &WaypointRef,
) -> Result<Route, TargetError> {
    let not_served = || TargetError::NotServed {
        target: conn.orig_dst,
        waypoint: waypoint.clone(),
    };
    let service = dest.service.as_ref().ok_or_else(not_served)?;
    match &service.waypoint {
        WaypointBinding::Bound(w) if w == waypoint => Ok(conn.route(dest)?),
        _ => Err(not_served()),
    }
}

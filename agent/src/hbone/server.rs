//! The HBONE listener: TCP on 15008, TLS 1.3 with a client certificate
//! required, then HTTP/2 streams for [`Inbound`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::inbound::{Inbound, Tunnel};
use super::HboneError;
use crate::config::snapshot::WaypointRef;
use crate::identity::tls::peer_identity;
use crate::identity::{Identity, ServerTls};

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which waypoint a connection is served as.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Always this one (`egret waypoint --name`).
    Waypoint(WaypointRef),
    /// The waypoint whose Gateway `spec.addresses` holds the address the
    /// peer connected to (a node agent hosting a remote-addressed waypoint).
    ByAddress,
}

/// Accepts HBONE connections.
pub struct HboneServer {
    /// Where the streams go.
    pub inbound: Arc<Inbound>,
    /// Certificates and peer checks.
    pub tls: Arc<ServerTls>,
    /// Which waypoint each connection reaches.
    pub scope: Scope,
}

impl HboneServer {
    /// Accepts connections until the listener fails.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HBONE accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(e) = server.connection(tcp, peer).await {
                    tracing::warn!(%peer, error = %e, "HBONE connection refused or failed");
                }
            });
        }
    }

    async fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<(), HboneError> {
        let local = tcp
            .local_addr()
            .map_err(|source| HboneError::Tls { peer, source })?;
        let waypoint = self
            .waypoint_for(local.ip())
            .ok_or(HboneError::NoWaypoint { local, peer })?;
        let identity = self.identity_of(&waypoint);
        let config = self.tls.config(&identity)?;
        let _ = tcp.set_nodelay(true);
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| HboneError::Tls {
                peer,
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| HboneError::Tls { peer, source })?;
        let trust_domain = self.tls.store().trust_domain();
        let peer_id =
            peer_identity(tls.get_ref().1.peer_certificates(), trust_domain).ok_or_else(|| {
                HboneError::NoPeerIdentity {
                    peer,
                    trust_domain: trust_domain.to_string(),
                }
            })?;
        tracing::debug!(%peer, peer.identity = %peer_id, waypoint = %waypoint, "HBONE connection accepted");
        let tunnel = Arc::new(Tunnel {
            peer: peer_id,
            peer_addr: peer,
            waypoint,
        });
        self.inbound.clone().serve_h2(tls, tunnel).await
    }

    fn waypoint_for(&self, local: IpAddr) -> Option<WaypointRef> {
        match &self.scope {
            Scope::Waypoint(w) => Some(w.clone()),
            Scope::ByAddress => {
                let local = crate::config::snapshot::canonical(local);
                let snapshot = self.inbound.proxy.snapshots.borrow().clone();
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
        let snapshot = self.inbound.proxy.snapshots.borrow().clone();
        let service_account = snapshot
            .waypoints
            .get(waypoint)
            .map(|w| w.service_account.clone())
            .unwrap_or_else(|| waypoint.name.clone());
        Identity {
            trust_domain: self.tls.store().trust_domain().to_string(),
            namespace: waypoint.namespace.clone(),
            service_account,
        }
    }
}

/// Binds the HBONE listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds `addr` and serves HBONE on it as `scope` until the task is dropped.
/// A port already taken is logged, not fatal: the agent still works for
/// everything but HBONE inbound.
pub fn spawn(
    inbound: Arc<Inbound>,
    tls: Arc<ServerTls>,
    scope: Scope,
    addr: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let listener = match bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for HBONE");
                return;
            }
        };
        tracing::info!(%addr, "HBONE listening");
        let server = Arc::new(HboneServer {
            inbound,
            tls,
            scope,
        });
        if let Err(e) = server.run(listener).await {
            tracing::error!(%addr, error = %e, "HBONE listener failed");
        }
    })
}

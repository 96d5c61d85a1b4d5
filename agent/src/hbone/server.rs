//! The HBONE listener: TCP on 15008, TLS 1.3 with a client certificate
//! required, then HTTP/2 whose CONNECT streams go to a [`Handler`]. What a
//! stream means (which service, which policy) is the handler's business:
//! this module is transport only, as ztunnel's `proxy/h2/server.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::request::{self, BadRequest};
use super::stream::H2Stream;
use super::{HboneError, CONNECTION_WINDOW, MAX_FRAME, SERVER_MAX_STREAMS, STREAM_WINDOW};
use crate::identity::tls::peer_identity;
use crate::identity::{Identity, ServerTls};
use crate::net::drain;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an HBONE server serves.
pub trait Handler: Send + Sync + 'static {
    /// What one connection is served as, worked out once from the address
    /// the peer reached (a node agent serves several waypoints).
    type Scope: Send + Sync + 'static;

    /// The scope of a connection that reached `local`, and the identity to
    /// present to the peer; `None` refuses the connection before TLS.
    fn scope(&self, local: SocketAddr) -> Option<(Self::Scope, Identity)>;

    /// Serves one CONNECT stream until it ends.
    fn serve(
        self: Arc<Self>,
        connect: Connect<Self::Scope>,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// The other side of an HBONE connection, as its certificate proved it.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The SPIFFE identity in the peer's verified certificate.
    pub identity: Identity,
    /// The peer's address (a node agent or a ztunnel).
    pub addr: SocketAddr,
}

/// One CONNECT stream as it arrives, until it is answered.
pub struct Connect<S> {
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    /// Who opened it.
    pub peer: Arc<Peer>,
    /// What its connection is served as.
    pub scope: Arc<S>,
}

impl<S> Connect<S> {
    /// The target asked for, or why the request is refused (400).
    pub fn target(&self) -> Result<SocketAddr, BadRequest> {
        request::target(&self.request)
    }

    /// The request's headers (`forwarded`, `baggage`, …).
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// Answers `status` with no body and ends the stream.
    pub fn refuse(mut self, status: StatusCode) {
        let response = Response::builder()
            .status(status)
            .body(())
            .expect("a status-only response is valid");
        let _ = self.respond.send_response(response, true);
    }

    /// Answers 200 and hands the stream over as bytes; `None` when the
    /// peer is already gone.
    pub fn accept(mut self) -> Option<H2Stream> {
        let response = Response::builder()
            .status(StatusCode::OK)
            .body(())
            .expect("a status-only response is valid");
        let send = self.respond.send_response(response, false).ok()?;
        Some(H2Stream::new(self.request.into_body(), send))
    }
}

/// Accepts HBONE connections for a [`Handler`].
pub struct HboneServer<H> {
    handler: Arc<H>,
    tls: Arc<ServerTls>,
    drain: drain::Watch,
}

impl<H: Handler> HboneServer<H> {
    /// A server presenting certificates of `tls`, streams to `handler`;
    /// never drained.
    pub fn new(handler: Arc<H>, tls: Arc<ServerTls>) -> Self {
        HboneServer {
            handler,
            tls,
            drain: drain::Watch::default(),
        }
    }

    /// The same server, drained by `drain`: it stops accepting, sends
    /// GOAWAY on every connection and holds each until its streams end.
    pub fn with_drain(self, drain: drain::Watch) -> Self {
        HboneServer { drain, ..self }
    }

    /// Accepts connections until the drain starts (the listener is then
    /// closed: new connections are refused).
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = self.drain.signaled() => return Ok(()),
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HBONE accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            let held = self.drain.hold();
            tokio::spawn(async move {
                if let Err(e) = server.connection(tcp, peer).await {
                    tracing::warn!(%peer, error = %e, "HBONE connection refused or failed");
                }
                drop(held);
            });
        }
    }

    async fn connection(&self, tcp: TcpStream, peer: SocketAddr) -> Result<(), HboneError> {
        let local = tcp
            .local_addr()
            .map_err(|source| HboneError::Tls { peer, source })?;
        let (scope, identity) = self
            .handler
            .scope(local)
            .ok_or(HboneError::NoWaypoint { local, peer })?;
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
        tracing::debug!(%peer, peer.identity = %peer_id, server.identity = %identity, "HBONE connection accepted");
        let peer = Arc::new(Peer {
            identity: peer_id,
            addr: peer,
        });
        self.serve_h2(tls, peer, Arc::new(scope)).await
    }

    /// Serves HTTP/2 on an established (and verified) connection until the
    /// peer closes it, one task per CONNECT stream; on drain, GOAWAY, and
    /// the streams already open go on to their end.
    async fn serve_h2<IO>(
        &self,
        io: IO,
        peer: Arc<Peer>,
        scope: Arc<H::Scope>,
    ) -> Result<(), HboneError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let h2_err = |source| HboneError::H2 {
            peer: peer.addr,
            source,
        };
        let mut conn = h2::server::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_concurrent_streams(SERVER_MAX_STREAMS)
            .max_header_list_size(64 * 1024)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(h2_err)?;
        let drain = self.drain.signaled();
        tokio::pin!(drain);
        let mut draining = false;
        loop {
            let next = tokio::select! {
                next = conn.accept() => next,
                () = &mut drain, if !draining => {
                    conn.graceful_shutdown();
                    draining = true;
                    continue;
                }
            };
            let Some(next) = next else { return Ok(()) };
            let (request, respond) = next.map_err(h2_err)?;
            let connect = Connect {
                request,
                respond,
                peer: peer.clone(),
                scope: scope.clone(),
            };
            // The connection's hold covers its streams: h2 keeps the
            // connection (and this loop) alive until every stream is done.
            tokio::spawn(self.handler.clone().serve(connect));
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

/// Binds `addr` and serves HBONE on it until the task is dropped or
/// `drain` starts. A port already taken is logged, not fatal: the agent
/// still works for everything but HBONE inbound.
pub fn spawn<H: Handler>(
    handler: Arc<H>,
    tls: Arc<ServerTls>,
    addr: SocketAddr,
    drain: drain::Watch,
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
        let server = Arc::new(HboneServer::new(handler, tls).with_drain(drain));
        if let Err(e) = server.run(listener).await {
            tracing::error!(%addr, error = %e, "HBONE listener failed");
        }
    })
}

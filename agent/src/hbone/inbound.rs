//! One CONNECT stream arriving at a waypoint: validate it, decide the
//! target, answer as ztunnel does (400 bad request or destination, 401 RBAC
//! deny, 503 upstream failure, 200 only once the upstream side is ready),
//! then run it through the proxy path a captured connection takes, with the
//! peer's SPIFFE identity as source. An open L4 stream is checked again on
//! every config change and closed when its service goes or policy now
//! denies it ([`crate::proxy::recheck`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::request::{self, BadRequest};
use super::stream::H2Stream;
use super::{HboneError, CONNECTION_WINDOW, MAX_FRAME, SERVER_MAX_STREAMS, STREAM_WINDOW};
use crate::config::snapshot::{WaypointBinding, WaypointRef};
use crate::identity::Identity;
use crate::proxy::access_log::{self, ConnectionOutcome};
use crate::proxy::context::{ConnectionContext, Destination, UpstreamTarget};
use crate::proxy::counted::{ByteCounters, Counted};
use crate::proxy::flags::ResponseFlag;
use crate::proxy::outbound::{route, Route};
use crate::proxy::recheck::{self, Revoked};
use crate::proxy::{connect, endpoint, http as l7, ProxyContext};
use crate::workload::identity::WorkloadInfo;

/// Copy buffer per direction for L4 tunnels.
const COPY_BUFFER: usize = 64 * 1024;

/// What one HBONE connection established: who the peer proved to be, from
/// where, and which waypoint it reached.
#[derive(Clone, Debug)]
pub struct Tunnel {
    /// The identity in the peer's verified certificate.
    pub peer: Identity,
    /// The peer's address (a node or a ztunnel).
    pub peer_addr: SocketAddr,
    /// The waypoint this connection is served as.
    pub waypoint: WaypointRef,
}

/// L4 policy on a tunnel: before it is opened a denial answers 401, as
/// ztunnel answers an RBAC deny; once open, a denial by a later config
/// closes it. The per-connection context carries the peer's identity as
/// `src_identity`; `dest` is its destination in the config being checked.
pub trait AuthorizeTunnel: Send + Sync + 'static {
    /// `Err(reason)` refuses the tunnel.
    fn check(&self, conn: &ConnectionContext, dest: &Destination) -> Result<(), String>;
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
    Route(#[from] crate::proxy::outbound::DispatchError),
}

/// The waypoint side of HBONE: streams in, proxy path out.
pub struct Inbound {
    /// The proxy the streams are fed into.
    pub proxy: Arc<ProxyContext>,
    /// L4 policy, when any.
    pub authorizer: Option<Arc<dyn AuthorizeTunnel>>,
}

impl Inbound {
    /// Serves HTTP/2 on an established (and verified) connection until the
    /// peer closes it, one task per CONNECT stream.
    pub async fn serve_h2<IO>(
        self: Arc<Self>,
        io: IO,
        tunnel: Arc<Tunnel>,
    ) -> Result<(), HboneError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let h2_err = |source| HboneError::H2 {
            peer: tunnel.peer_addr,
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
        while let Some(next) = conn.accept().await {
            let (request, respond) = next.map_err(h2_err)?;
            tokio::spawn(self.clone().stream(request, respond, tunnel.clone()));
        }
        Ok(())
    }

    /// One CONNECT stream, answered and proxied; always logged once.
    pub async fn stream(
        self: Arc<Self>,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        tunnel: Arc<Tunnel>,
    ) {
        let target = match request::target(&request) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(peer = %tunnel.peer_addr, error = %e, "CONNECT refused");
                reply(&mut respond, e.status());
                return;
            }
        };
        let conn = Arc::new(self.context(&request, &tunnel, target));
        let meter = access_log::connection_opened(&conn, crate::metrics::Reporter::Waypoint);
        let bytes = Arc::new(ByteCounters::default());
        let held = self.proxy.admission.admit(&conn.workload);
        let outcome = match (
            held.as_ref(),
            served(&conn, &conn.accepted, &tunnel.waypoint),
        ) {
            (Err(refused), _) => {
                reply(&mut respond, StatusCode::SERVICE_UNAVAILABLE);
                crate::metrics::proxy_metrics().connection_rejected(refused.limit());
                ConnectionOutcome::refused(ResponseFlag::OverloadManager, refused)
            }
            (Ok(_), served) => match served {
                Err(e) => {
                    reply(&mut respond, StatusCode::BAD_REQUEST);
                    let flag = match &e {
                        TargetError::Route(d) => d.flag(),
                        _ => ResponseFlag::NoRoute,
                    };
                    ConnectionOutcome::refused(flag, &e)
                }
                Ok(route) => {
                    let denied = self
                        .authorizer
                        .as_ref()
                        .and_then(|a| a.check(&conn, &conn.accepted).err());
                    match denied {
                        Some(reason) => {
                            reply(&mut respond, StatusCode::UNAUTHORIZED);
                            let mut outcome = ConnectionOutcome::default();
                            outcome.fail(None, &format!("RBAC: access denied: {reason}"));
                            outcome
                        }
                        None => {
                            self.open(&conn, route, request.into_body(), respond, &bytes)
                                .await
                        }
                    }
                }
            },
        };
        drop(held);
        access_log::connection_complete(&conn, &outcome, &bytes, &meter);
    }

    /// L4 policy on the stream in `dest`'s config.
    fn policy(&self, conn: &ConnectionContext, dest: &Destination) -> Result<(), Revoked> {
        match &self.authorizer {
            Some(a) => a.check(conn, dest).map_err(|reason| Revoked::Denied {
                generation: dest.snapshot.generation,
                reason,
            }),
            None => Ok(()),
        }
    }

    /// The per-connection facts: the source is the verified peer identity
    /// at the address `forwarded: for=` names (the workload behind it).
    fn context(
        &self,
        request: &Request<RecvStream>,
        tunnel: &Tunnel,
        target: SocketAddr,
    ) -> ConnectionContext {
        let headers = request.headers();
        let src = request::forwarded_for(headers).unwrap_or(tunnel.peer_addr);
        let workload = Arc::new(WorkloadInfo {
            name: request::baggage_workload_name(headers)
                .unwrap_or_default()
                .to_string(),
            namespace: tunnel.peer.namespace.clone(),
            service_account: tunnel.peer.service_account.clone(),
            ip: src.ip(),
            netns_cookie: 0,
        });
        let snapshot = self.proxy.snapshots.borrow().clone();
        ConnectionContext::new(snapshot, &tunnel.peer.trust_domain, workload, src, target)
    }

    /// Connects the upstream side (L4) or readies the L7 server, answers
    /// 200 or 503, and carries the stream until it ends.
    async fn open(
        &self,
        conn: &Arc<ConnectionContext>,
        route: Route,
        body: RecvStream,
        mut respond: SendResponse<Bytes>,
        bytes: &Arc<ByteCounters>,
    ) -> ConnectionOutcome {
        match route {
            Route::Http(target) => {
                // The L7 server connects upstream per request; the tunnel is
                // ready as soon as the route is known (as Envoy does).
                let Some(send) = accept(&mut respond) else {
                    return ConnectionOutcome::default();
                };
                let stream = Counted::new(H2Stream::new(body, send), bytes.clone());
                l7::serve(self.proxy.clone(), conn.clone(), target, stream).await
            }
            Route::Passthrough(target) => {
                // The ClientHello comes only after the 200; policy on its
                // SNI closes the stream if it denies.
                let Some(send) = accept(&mut respond) else {
                    return ConnectionOutcome::default();
                };
                let stream = Counted::new(H2Stream::new(body, send), bytes.clone());
                let passed = crate::proxy::passthrough::serve(&self.proxy, conn, &target, stream);
                recheck::hold(&self.proxy, conn, passed, |dest| {
                    crate::proxy::passthrough::recheck(conn, dest)
                })
                .await
            }
            Route::Tcp(target) => {
                let proxied = self.tcp(conn, &target, body, respond, bytes);
                recheck::hold(&self.proxy, conn, proxied, |dest| self.policy(conn, dest)).await
            }
        }
    }

    async fn tcp(
        &self,
        conn: &ConnectionContext,
        target: &UpstreamTarget,
        body: RecvStream,
        mut respond: SendResponse<Bytes>,
        bytes: &Arc<ByteCounters>,
    ) -> ConnectionOutcome {
        let mut outcome = ConnectionOutcome::default();
        let addrs =
            match endpoint::select(self.proxy.resolver.as_ref(), target, conn.orig_dst).await {
                Ok(a) => a,
                Err(e) => {
                    reply(&mut respond, StatusCode::SERVICE_UNAVAILABLE);
                    outcome.fail(Some(e.flag()), &e);
                    return outcome;
                }
            };
        let (mut upstream, addr) = match connect::connect_first(&addrs).await {
            Ok(c) => c,
            Err(e) => {
                reply(&mut respond, StatusCode::SERVICE_UNAVAILABLE);
                outcome.fail(Some(e.flag()), &e);
                return outcome;
            }
        };
        outcome.upstream = Some(addr);
        let Some(send) = accept(&mut respond) else {
            return outcome;
        };
        let mut downstream = Counted::new(H2Stream::new(body, send), bytes.clone());
        if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
            &mut downstream,
            &mut upstream,
            COPY_BUFFER,
            COPY_BUFFER,
        )
        .await
        {
            outcome.fail(None, &format!("copying between {addr} and the tunnel: {e}"));
        }
        outcome
    }
}

/// The route, in `dest`'s config, of a stream whose target must be a
/// service bound to `waypoint`.
pub fn served(
    conn: &ConnectionContext,
    dest: &Destination,
    waypoint: &WaypointRef,
) -> Result<Route, TargetError> {
    let not_served = || TargetError::NotServed {
        target: conn.orig_dst,
        waypoint: waypoint.clone(),
    };
    let service = dest.service.as_ref().ok_or_else(not_served)?;
    match &service.waypoint {
        WaypointBinding::Bound(w) if w == waypoint => Ok(route(dest, conn.orig_dst)?),
        _ => Err(not_served()),
    }
}

/// Sends a bodyless answer that ends the stream.
fn reply(respond: &mut SendResponse<Bytes>, status: StatusCode) {
    let response = Response::builder()
        .status(status)
        .body(())
        .expect("a status-only response is valid");
    let _ = respond.send_response(response, true);
}

/// Sends 200 and keeps the stream open for data.
fn accept(respond: &mut SendResponse<Bytes>) -> Option<h2::SendStream<Bytes>> {
    let response = Response::builder()
        .status(StatusCode::OK)
        .body(())
        .expect("a status-only response is valid");
    respond.send_response(response, false).ok()
}

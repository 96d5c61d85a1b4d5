//! Outbound dispatch: a captured connection is matched to its service and
//! port in the snapshot current at accept time, then refused, served as
//! HTTP, passed through by TLS SNI, or proxied as TCP, and always logged
//! once. L4 paths are watched while open ([`recheck`]): a config change
//! that takes their service away or denies them closes them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::access_log::{self, ConnectionOutcome};
use super::context::{ConnectionContext, Destination, UpstreamTarget};
use super::counted::{ByteCounters, Counted};
use super::flags::ResponseFlag;
use super::recheck::{self, Revoked};
use super::{http, passthrough, tcp, ProxyContext};
use crate::config::snapshot::{WaypointBinding, WaypointRef};
use crate::workload::identity::WorkloadInfo;

/// Why a captured connection was not carried anywhere.
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

impl DispatchError {
    /// The response flag the refusal is logged with.
    pub fn flag(&self) -> ResponseFlag {
        match self {
            DispatchError::UnknownAddress(_) | DispatchError::UndeclaredPort { .. } => {
                ResponseFlag::NoRoute
            }
            DispatchError::WaypointMissing { .. } => ResponseFlag::WaypointMissing,
        }
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
}

impl Route {
    /// The service port the connection is for.
    pub fn target(&self) -> &UpstreamTarget {
        match self {
            Route::Http(t) | Route::Passthrough(t) | Route::Tcp(t) => t,
        }
    }
}

/// Chooses the path for a connection to `orig_dst` in `dest`'s config.
pub fn route(dest: &Destination, orig_dst: SocketAddr) -> Result<Route, DispatchError> {
    let service = dest
        .service
        .as_ref()
        .ok_or(DispatchError::UnknownAddress(orig_dst.ip()))?;
    let port = dest
        .port(orig_dst.port())
        .ok_or_else(|| DispatchError::UndeclaredPort {
            host: service.host.clone(),
            port: orig_dst.port(),
        })?;
    let target = UpstreamTarget {
        service: service.clone(),
        port: port.clone(),
    };
    match &service.waypoint {
        WaypointBinding::Missing(waypoint) => Err(DispatchError::WaypointMissing {
            host: service.host.clone(),
            waypoint: waypoint.clone(),
        }),
        WaypointBinding::Bound(_) if port.protocol.is_http() => Ok(Route::Http(target)),
        WaypointBinding::Bound(_) if passthrough::handles(port.protocol) => {
            Ok(Route::Passthrough(target))
        }
        WaypointBinding::Bound(_) | WaypointBinding::None => Ok(Route::Tcp(target)),
    }
}

/// Serves one captured connection. `src` is the workload's address as the
/// access log shows it (workload IP + client port); `orig_dst` is where the
/// workload connected (a service VIP and port). Never panics; every outcome
/// ends in exactly one `connection complete` access log line.
pub async fn handle_outbound(
    ctx: Arc<ProxyContext>,
    stream: TcpStream,
    workload: Arc<WorkloadInfo>,
    src: SocketAddr,
    orig_dst: SocketAddr,
) {
    let snapshot = ctx.snapshots.borrow().clone();
    let conn = Arc::new(ConnectionContext::new(
        snapshot,
        &ctx.trust_domain,
        workload,
        src,
        orig_dst,
    ));
    let meter =
        access_log::connection_opened(&conn, crate::metrics::proxy::outbound_reporter(&conn));
    let bytes = Arc::new(ByteCounters::default());
    let _ = stream.set_nodelay(true);
    let downstream = Counted::new(stream, bytes.clone());

    let outcome = match ctx.admission.admit(&conn.workload) {
        Err(refused) => {
            drop(downstream);
            tracing::debug!(error = %refused, "connection refused");
            crate::metrics::proxy_metrics().connection_rejected(refused.limit());
            ConnectionOutcome::refused(ResponseFlag::OverloadManager, &refused)
        }
        Ok(_held) => carry(&ctx, &conn, downstream).await,
    };
    access_log::connection_complete(&conn, &outcome, &bytes, &meter);
}

/// Carries an admitted connection along its route.
async fn carry(
    ctx: &Arc<ProxyContext>,
    conn: &Arc<ConnectionContext>,
    downstream: Counted<TcpStream>,
) -> ConnectionOutcome {
    match route(&conn.accepted, conn.orig_dst) {
        Err(e) => {
            // Dropping the stream closes it: the workload sees a closed
            // connection, as with any refused connection.
            drop(downstream);
            tracing::debug!(error = %e, "connection refused");
            ConnectionOutcome::refused(e.flag(), &e)
        }
        // A remote waypoint does the L4/L7 work; this agent only tunnels.
        Ok(_) if crate::hbone::tunnel::remote_waypoint(&conn.accepted).is_some() => {
            let tunnel = crate::hbone::tunnel::forward(ctx, conn, downstream);
            recheck::hold(ctx, conn, tunnel, |_| Ok(())).await
        }
        Ok(Route::Tcp(target)) => {
            match super::authorize::authorize_connection(conn, &conn.accepted) {
                Err(decision) => {
                    drop(downstream);
                    let reason = super::authorize::describe(&decision);
                    ConnectionOutcome::refused(
                        ResponseFlag::RbacDenied,
                        format!("RBAC: access denied: {reason}"),
                    )
                }
                Ok(()) => {
                    let proxied = tcp::proxy(ctx.resolver.as_ref(), conn, &target, downstream);
                    recheck::hold(ctx, conn, proxied, |dest| {
                        super::authorize::authorize_connection(conn, dest)
                            .map_err(|d| Revoked::denied(dest, &d))
                    })
                    .await
                }
            }
        }
        Ok(Route::Http(target)) => http::serve(ctx.clone(), conn.clone(), target, downstream).await,
        Ok(Route::Passthrough(target)) => {
            let passed = passthrough::serve(ctx, conn, &target, downstream);
            recheck::hold(ctx, conn, passed, |dest| passthrough::recheck(conn, dest)).await
        }
    }
}

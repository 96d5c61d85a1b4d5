//! Outbound: a connection captured from a workload on this node is matched
//! to its service and port in the snapshot current at accept time, routed
//! once ([`super::route`]), then refused, served as HTTP, passed through by
//! TLS SNI, proxied as TCP, or tunnelled to a remote waypoint, and always
//! logged once. L4 paths are watched while open ([`recheck`]): a config
//! change that takes their service away or denies them closes them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::context::ConnectionContext;
use super::counted::Counted;
use super::l4::{self, Preface};
use super::metrics::Reporter;
use super::outcome::{ConnectionOutcome, Failure};
use super::recheck::{self, Revoked};
use super::record::ConnectionRecord;
use super::route::Route;
use super::{http, passthrough, tunnel, ProxyContext};
use crate::identity::WorkloadInfo;

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
    let mut record = ConnectionRecord::open(ctx.metrics.clone(), conn.clone(), reporter(&conn));
    let _ = stream.set_nodelay(true);
    let downstream = Counted::new(stream, record.bytes().clone());

    let outcome = match ctx.admission.admit(&conn.workload) {
        Err(refused) => {
            drop(downstream);
            tracing::debug!(error = %refused, "connection refused");
            ctx.metrics.connection_rejected(refused.limit());
            ConnectionOutcome::refused(Failure::of(&refused))
        }
        Ok(_held) => carry(&ctx, &conn, downstream).await,
    };
    record.end(outcome);
}

/// Who reports the connection's metrics: the waypoint when this process
/// serves the service's waypoint, else the workload's side (no waypoint,
/// or a tunnel to one elsewhere that reports its own).
fn reporter(conn: &ConnectionContext) -> Reporter {
    if conn.waypoint().is_some_and(|w| w.remote.is_none()) {
        Reporter::Waypoint
    } else {
        Reporter::Source
    }
}

/// Carries an admitted connection along its route.
async fn carry(
    ctx: &Arc<ProxyContext>,
    conn: &Arc<ConnectionContext>,
    downstream: Counted<TcpStream>,
) -> ConnectionOutcome {
    match conn.route(&conn.accepted) {
        Err(e) => {
            // Dropping the stream closes it: the workload sees a closed
            // connection, as with any refused connection.
            drop(downstream);
            tracing::debug!(error = %e, "connection refused");
            ConnectionOutcome::refused(Failure::of(&e))
        }
        // A remote waypoint does the L4/L7 work; this agent only tunnels.
        Ok(Route::Tunnel(_, waypoint)) => {
            let tunnel = tunnel::forward(ctx, conn, &waypoint, downstream);
            recheck::hold(ctx, conn, tunnel, |_| Ok(())).await
        }
        Ok(Route::Tcp(target)) => match ctx.authorizer.connection(conn, &conn.accepted) {
            Err(denied) => {
                drop(downstream);
                ConnectionOutcome::refused(Failure::of(&denied))
            }
            Ok(()) => {
                let resolver = ctx.resolver.as_ref();
                let proxied = l4::proxy(resolver, conn, &target, Preface::default(), downstream);
                recheck::hold(ctx, conn, proxied, |dest| {
                    ctx.authorizer
                        .connection(conn, dest)
                        .map_err(|d| Revoked::denied(dest, &d))
                })
                .await
            }
        },
        Ok(Route::Http(target)) => http::serve(ctx.clone(), conn.clone(), target, downstream).await,
        Ok(Route::Passthrough(target)) => {
            let passed = passthrough::serve(ctx, conn, &target, downstream);
            recheck::hold(ctx, conn, passed, |dest| {
                passthrough::recheck(ctx, conn, dest)
            })
            .await
        }
    }
}

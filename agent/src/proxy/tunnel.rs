//! A captured connection whose service is bound to a remote waypoint: sent
//! as one CONNECT stream to the waypoint's HBONE address, bytes copied both
//! ways. The waypoint does the L7 work; this side only tunnels (and closes
//! the tunnel when a new config sends the service elsewhere:
//! [`super::recheck`]).

use tokio::io::{AsyncRead, AsyncWrite};

use super::context::ConnectionContext;
use super::flags::ResponseFlag;
use super::outcome::{ConnectionOutcome, Failure};
use super::route::RemoteWaypoint;
use super::ProxyContext;
use crate::hbone::pool::PoolKey;
use crate::hbone::request;

/// Copy buffer per direction.
const COPY_BUFFER: usize = 64 * 1024;

/// Tunnels `downstream` to `waypoint` until both sides close.
pub async fn forward<S>(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    waypoint: &RemoteWaypoint,
    mut downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut outcome = ConnectionOutcome::default();
    let addr = waypoint.addr;
    let Some(client) = ctx.hbone.as_ref() else {
        outcome.fail(Failure::flagged(
            ResponseFlag::UpstreamConnectionFailure,
            format!(
                "waypoint {} at {addr} needs HBONE, and this agent has no identity to present",
                waypoint.peer.reference
            ),
        ));
        return outcome;
    };
    let key = PoolKey {
        src: conn.src_identity.clone(),
        dst: waypoint.peer.identity.clone(),
        addr,
    };
    let host = conn.service().map(|s| s.host.as_str());
    let connect = request::build(conn.orig_dst, conn.src, host, &conn.workload);
    outcome.upstream = Some(addr);
    let mut tunnel = match client.open(&key, connect).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "HBONE tunnel not opened");
            outcome.fail(Failure::of(&e));
            return outcome;
        }
    };
    if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
        &mut downstream,
        &mut tunnel,
        COPY_BUFFER,
        COPY_BUFFER,
    )
    .await
    {
        outcome.fail(Failure::unflagged(format!(
            "copying through the tunnel to {addr}: {e}"
        )));
    }
    outcome
}

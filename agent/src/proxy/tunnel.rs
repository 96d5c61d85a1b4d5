//! A captured connection whose service is bound to a remote waypoint: sent
//! as one CONNECT stream to the waypoint's HBONE address, bytes copied both
//! ways. The waypoint does the L7 work; this side only tunnels (and closes
//! the tunnel when a new config sends the service elsewhere:
//! [`super::recheck`]).

use tokio::io::{AsyncRead, AsyncWrite};

use super::context::ConnectionContext;
use super::flags::ResponseFlag;
use super::l4;
use super::outcome::{ConnectionOutcome, Failure};
use super::route::RemoteWaypoint;
use super::ProxyContext;
use crate::hbone::pool::HbonePoolKey;
use crate::hbone::request;

/// Tunnels `downstream` to `waypoint` until both sides close.
pub async fn forward<S>(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    waypoint: &RemoteWaypoint,
    downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let addr = waypoint.addr;
    let Some(client) = ctx.hbone.as_ref() else {
        return ConnectionOutcome::refused(Failure::flagged(
            ResponseFlag::UpstreamConnectionFailure,
            format!(
                "waypoint {} at {addr} needs HBONE, and this agent has no identity to present",
                waypoint.peer.reference
            ),
        ));
    };
    let key = HbonePoolKey {
        src: conn.src_identity.clone(),
        dst: waypoint.peer.identity.clone(),
        addr,
    };
    let host = conn.service().map(|s| s.host.as_str());
    let connect = request::build(conn.orig_dst, conn.src, host, &conn.workload);
    match client.open(&key, connect).await {
        Ok(tunnel) => l4::carry_tunnel(downstream, tunnel, addr).await,
        Err(e) => {
            tracing::debug!(error = %e, "HBONE tunnel not opened");
            let mut outcome = ConnectionOutcome::refused(Failure::of(&e));
            outcome.upstream = Some(addr);
            outcome
        }
    }
}

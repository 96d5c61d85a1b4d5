//! A captured connection whose service is bound to a remote waypoint: sent
//! as one CONNECT stream to the waypoint's HBONE address, bytes copied both
//! ways. The waypoint does the L7 work; this side only tunnels (and closes
//! the tunnel when a new config sends the service elsewhere:
//! [`crate::proxy::recheck`]).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use super::client::hbone_addr;
use super::pool::PoolKey;
use super::request;
use crate::proxy::access_log::ConnectionOutcome;
use crate::proxy::context::{ConnectionContext, Destination};
use crate::proxy::flags::ResponseFlag;
use crate::proxy::ProxyContext;

/// Copy buffer per direction.
const COPY_BUFFER: usize = 64 * 1024;

/// Where the destination's waypoint listens for HBONE, when it is remote.
pub fn remote_waypoint(dest: &Destination) -> Option<SocketAddr> {
    let waypoint = dest.waypoint.as_ref()?;
    let address = dest.snapshot.waypoints.get(&waypoint.reference)?.address?;
    Some(hbone_addr(address))
}

/// Tunnels `downstream` to its remote waypoint until both sides close.
pub async fn forward<S>(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    mut downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut outcome = ConnectionOutcome::default();
    let (Some(addr), Some(waypoint)) = (remote_waypoint(&conn.accepted), conn.waypoint()) else {
        outcome.fail(Some(ResponseFlag::NoRoute), &"no remote waypoint");
        return outcome;
    };
    let Some(client) = ctx.hbone.as_ref() else {
        outcome.fail(
            Some(ResponseFlag::UpstreamConnectionFailure),
            &format!(
                "waypoint {} at {addr} needs HBONE, and this agent has no identity to present",
                waypoint.reference
            ),
        );
        return outcome;
    };
    let key = PoolKey {
        src: conn.src_identity.clone(),
        dst: waypoint.identity.clone(),
        addr,
    };
    let host = conn.service().map(|s| s.host.as_str());
    let connect = request::build(conn.orig_dst, conn.src, host, &conn.workload);
    outcome.upstream = Some(addr);
    let mut tunnel = match client.open(&key, connect).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "HBONE tunnel not opened");
            outcome.fail(Some(ResponseFlag::UpstreamConnectionFailure), &e);
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
        outcome.fail(None, &format!("copying through the tunnel to {addr}: {e}"));
    }
    outcome
}

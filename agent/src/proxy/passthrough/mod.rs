//! TLS passthrough: for TLS and HTTPS ports of waypoint-bound services the
//! waypoint reads the workload's ClientHello without terminating TLS, checks
//! the server name (SNI) against the service, AuthorizationPolicy and the
//! VirtualService `tls` routes, then sends every byte upstream unchanged —
//! the workload talks TLS with the real server and sees its certificate.
//!
//! Follow a connection: [`read`] buffers the ClientHello ([`client_hello`]
//! parses it), [`target`] picks the service port, [`crate::proxy::l4`]
//! carries the buffered bytes and the rest.

pub mod client_hello;
pub mod read;
pub mod target;

use tokio::io::{AsyncRead, AsyncWrite};

use super::authorize::Denied;
use super::context::{ConnectionContext, ResolvedDestination, UpstreamTarget};
use super::flags::ResponseFlag;
use super::l4::{self, Preface};
use super::outcome::{ConnectionOutcome, Failure, Flagged};
use super::recheck::{self, Revoked};
use super::ProxyContext;
use crate::config::snapshot::Protocol;
use crate::net::HostName;

use self::read::{read_client_hello, ReadHelloError, HELLO_TIMEOUT};

/// Whether a port of a waypoint-bound service is served by passthrough.
pub fn handles(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Tls | Protocol::Https)
}

/// Why a passthrough connection was not carried upstream.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// No usable ClientHello.
    #[error(transparent)]
    Hello(#[from] ReadHelloError),
    /// The ClientHello named no server: nothing to check the service against.
    #[error("ClientHello for service {service} has no server name (SNI)")]
    NoServerName {
        /// The service connected to.
        service: String,
    },
    /// The SNI is not a name of the service connected to.
    #[error("SNI \"{sni}\" is not a name of service {service}")]
    NotCovered {
        /// The service connected to.
        service: String,
        /// The name the workload sent.
        sni: String,
    },
    /// VirtualService `tls` routes exist for the service; none matches.
    #[error("no VirtualService tls route of {service} matches SNI \"{sni}\"")]
    NoRouteMatched {
        /// The service connected to.
        service: String,
        /// The name the workload sent.
        sni: String,
    },
    /// A `tls` route names a service port that does not exist.
    #[error("tls route destination {host}:{port} is not a known service port")]
    UnknownDestination {
        /// The destination host.
        host: String,
        /// Its port.
        port: u16,
    },
    /// AuthorizationPolicy denied the connection.
    #[error(transparent)]
    Denied(Denied),
    /// The config changed while the ClientHello was read, and the
    /// connection's service or path went with it.
    #[error(transparent)]
    Revoked(Revoked),
}

impl Flagged for PassthroughError {
    fn flag(&self) -> Option<ResponseFlag> {
        match self {
            PassthroughError::Hello(_) => Some(ResponseFlag::DownstreamProtocolError),
            PassthroughError::NoServerName { .. }
            | PassthroughError::NotCovered { .. }
            | PassthroughError::NoRouteMatched { .. } => Some(ResponseFlag::NoRoute),
            PassthroughError::UnknownDestination { .. } => Some(ResponseFlag::NoHealthyUpstream),
            PassthroughError::Denied(d) => d.flag(),
            PassthroughError::Revoked(r) => r.flag(),
        }
    }
}

/// Serves one TLS connection to `connected` (a TLS/HTTPS port of a
/// waypoint-bound service). A refused connection is closed without a byte
/// sent back; the outcome says why. The SNI is checked against the config
/// in force once the ClientHello is in.
pub async fn serve<S>(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    connected: &UpstreamTarget,
    mut downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let read = match read_client_hello(&mut downstream, HELLO_TIMEOUT).await {
        Ok(read) => read,
        Err(e) => return refused(e.into()),
    };
    let dest = conn.destination_in(ctx.snapshots.borrow().clone());
    let target = match admit(ctx, conn, &dest, connected, read.hello.server_name) {
        Ok(target) => target,
        Err(e) => return refused(e),
    };
    let preface = Preface {
        host: conn.sni(),
        bytes: &read.bytes,
    };
    l4::proxy(ctx.resolver.as_ref(), conn, &target, preface, downstream).await
}

/// The re-check of an open passthrough connection in a new config: its
/// SNI (once known) must still be allowed by L4 policy.
pub fn recheck(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    dest: &ResolvedDestination,
) -> Result<(), Revoked> {
    if conn.sni().is_none() {
        return Ok(());
    }
    ctx.authorizer
        .tls(conn, dest)
        .map_err(|d| Revoked::denied(dest, &d))
}

/// Records the SNI on the connection, then checks it in `dest`'s config: a
/// name of the service, allowed by policy, routed.
fn admit(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    dest: &ResolvedDestination,
    connected: &UpstreamTarget,
    server_name: Option<HostName>,
) -> Result<UpstreamTarget, PassthroughError> {
    let sni = server_name.ok_or_else(|| PassthroughError::NoServerName {
        service: connected.service.host.to_string(),
    })?;
    let sni = conn.sni.get_or_init(|| sni);
    if !connected.service.host.covers(sni) {
        return Err(PassthroughError::NotCovered {
            service: connected.service.host.to_string(),
            sni: sni.to_string(),
        });
    }
    recheck::path_unchanged(conn, dest).map_err(PassthroughError::Revoked)?;
    ctx.authorizer
        .tls(conn, dest)
        .map_err(PassthroughError::Denied)?;
    // The same service port as at accept, with the endpoints in force now.
    let current = conn
        .route(dest)
        .map(|r| r.target().clone())
        .unwrap_or_else(|_| connected.clone());
    target::resolve(conn, dest, &current, sni)
}

fn refused(e: PassthroughError) -> ConnectionOutcome {
    tracing::debug!(error = %e, "TLS passthrough refused");
    ConnectionOutcome::refused(Failure::of(&e))
}

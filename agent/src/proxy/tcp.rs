//! The L4 path: bytes copied both ways between the workload and one upstream
//! endpoint, each direction closed on its own (half-close).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::context::{ConnectionContext, UpstreamTarget};
use super::endpoint::{self, EndpointError};
use super::flags::ResponseFlag;
use super::outcome::{ConnectionOutcome, Failure, Flagged};
use super::ResolveHost;
use crate::net::socket::{self, ConnectError};

/// Copy buffer per direction: large enough for bulk transfers.
const COPY_BUFFER: usize = 64 * 1024;

/// Why a proxied TCP connection failed.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// No upstream address.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No upstream address accepted the connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// One side failed while bytes were flowing.
    #[error("copying between {upstream} and the workload: {source}")]
    Copy {
        /// The upstream endpoint.
        upstream: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Flagged for TcpError {
    fn flag(&self) -> Option<ResponseFlag> {
        match self {
            TcpError::Endpoint(e) => e.flag(),
            TcpError::Connect(e) => e.flag(),
            // A reset mid-stream is the peers' business, not a proxy failure.
            TcpError::Copy { .. } => None,
        }
    }
}

/// Proxies `downstream` to `target` until both directions are closed.
pub async fn proxy<S>(
    resolver: &dyn ResolveHost,
    conn: &ConnectionContext,
    target: &UpstreamTarget,
    downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    proxy_after(resolver, conn, target, Preface::default(), downstream).await
}

/// What was read from the workload before proxying started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Preface<'a> {
    /// The name the workload asked for (TLS SNI): a wildcard service
    /// resolves it (only when it covers it).
    pub host: Option<&'a str>,
    /// Bytes already read, sent upstream first and unchanged.
    pub bytes: &'a [u8],
}

/// Like [`proxy`], for a connection whose first bytes were already read.
pub async fn proxy_after<S>(
    resolver: &dyn ResolveHost,
    conn: &ConnectionContext,
    target: &UpstreamTarget,
    preface: Preface<'_>,
    mut downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut outcome = ConnectionOutcome::default();
    if let Err(e) = run(
        resolver,
        conn,
        target,
        preface,
        &mut downstream,
        &mut outcome,
    )
    .await
    {
        outcome.fail(Failure::of(&e));
    }
    outcome
}

async fn run<S>(
    resolver: &dyn ResolveHost,
    conn: &ConnectionContext,
    target: &UpstreamTarget,
    preface: Preface<'_>,
    downstream: &mut S,
    outcome: &mut ConnectionOutcome,
) -> Result<(), TcpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let addrs = endpoint::select_for_host(resolver, target, conn.orig_dst, preface.host).await?;
    let (mut upstream, addr) = socket::connect_first(&addrs).await?;
    outcome.upstream = Some(addr);
    let copy_error = |source| TcpError::Copy {
        upstream: addr,
        source,
    };
    upstream
        .write_all(preface.bytes)
        .await
        .map_err(copy_error)?;
    // copy_bidirectional shuts down each write side when its reader hits
    // EOF and keeps the other direction flowing: a correct half-close.
    tokio::io::copy_bidirectional_with_sizes(downstream, &mut upstream, COPY_BUFFER, COPY_BUFFER)
        .await
        .map_err(copy_error)?;
    Ok(())
}

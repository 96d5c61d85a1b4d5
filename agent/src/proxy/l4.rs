//! The L4 path, the one way bytes are carried: [`connect`] to the first
//! endpoint of a service port that accepts (or take a stream opened
//! otherwise: an HBONE tunnel), then [`carry`] bytes both ways, each
//! direction closed on its own (half-close); [`carry_tunnel`] when one side
//! is a CONNECT stream. [`proxy`] does both.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::context::{ConnectionContext, UpstreamTarget};
use super::endpoint::{self, EndpointError};
use super::flags::ResponseFlag;
use super::outcome::{ConnectionOutcome, Failure, Flagged};
use super::ResolveHost;
use crate::hbone::splice::{self, Tunnel};
use crate::net::socket::{self, ConnectError};

/// Copy buffer per direction: large enough for bulk transfers.
const COPY_BUFFER: usize = 64 * 1024;

/// Why an L4 connection failed.
#[derive(Debug, thiserror::Error)]
pub enum L4Error {
    /// No upstream address.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No upstream address accepted the connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// One side failed while bytes were flowing.
    #[error("copying between {upstream} and the workload: {source}")]
    Copy {
        /// The upstream endpoint (or waypoint).
        upstream: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Flagged for L4Error {
    fn flag(&self) -> Option<ResponseFlag> {
        match self {
            L4Error::Endpoint(e) => e.flag(),
            L4Error::Connect(e) => e.flag(),
            // A reset mid-stream is the peers' business, not a proxy failure.
            L4Error::Copy { .. } => None,
        }
    }
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

/// Connects to the first endpoint of `target` that accepts; `host` is the
/// name a wildcard service resolves.
pub async fn connect(
    resolver: &dyn ResolveHost,
    conn: &ConnectionContext,
    target: &UpstreamTarget,
    host: Option<&str>,
) -> Result<(TcpStream, SocketAddr), L4Error> {
    let addrs = endpoint::select_for_host(resolver, target, conn.orig_dst, host).await?;
    Ok(socket::connect_first(&addrs).await?)
}

/// Copies between `downstream` and `upstream` (at `addr`) until both
/// directions are closed; `preface` goes upstream first.
pub async fn carry<D, U>(
    mut downstream: D,
    mut upstream: U,
    addr: SocketAddr,
    preface: &[u8],
) -> ConnectionOutcome
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut outcome = ConnectionOutcome::default();
    outcome.upstream = Some(addr);
    let copy_error = |source| L4Error::Copy {
        upstream: addr,
        source,
    };
    let copied = async {
        upstream.write_all(preface).await.map_err(copy_error)?;
        // copy_bidirectional shuts down each write side when its reader hits
        // EOF and keeps the other direction flowing: a correct half-close.
        tokio::io::copy_bidirectional_with_sizes(
            &mut downstream,
            &mut upstream,
            COPY_BUFFER,
            COPY_BUFFER,
        )
        .await
        .map_err(copy_error)
    };
    if let Err(e) = copied.await {
        outcome.fail(Failure::of(&e));
    }
    outcome
}

/// [`carry`] between a plain stream and a CONNECT stream (either side of
/// an HBONE tunnel, `addr` the peer named in errors): the same half-close
/// and errors, without copying the bytes through a buffer.
pub async fn carry_tunnel<P, T>(mut plain: P, mut tunnel: T, addr: SocketAddr) -> ConnectionOutcome
where
    P: AsyncRead + AsyncWrite + Unpin,
    T: Tunnel,
{
    let mut outcome = ConnectionOutcome::default();
    outcome.upstream = Some(addr);
    if let Err(source) = splice::splice(&mut plain, &mut tunnel).await {
        outcome.fail(Failure::of(&L4Error::Copy {
            upstream: addr,
            source,
        }));
    }
    outcome
}

/// Proxies `downstream` to `target` until both directions are closed:
/// [`connect`], then [`carry`].
pub async fn proxy<S>(
    resolver: &dyn ResolveHost,
    conn: &ConnectionContext,
    target: &UpstreamTarget,
    preface: Preface<'_>,
    downstream: S,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match connect(resolver, conn, target, preface.host).await {
        Ok((upstream, addr)) => carry(downstream, upstream, addr, preface.bytes).await,
        Err(e) => ConnectionOutcome::refused(Failure::of(&e)),
    }
}

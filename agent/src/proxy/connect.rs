//! Upstream connections: every socket the waypoint opens towards an
//! upstream is made here, carrying egret's mark so the kernel programs never
//! capture the waypoint's own traffic.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::flags::ResponseFlag;

/// How long one address may take to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no upstream connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// There was nothing to try.
    #[error("no upstream address to connect to")]
    NoAddress,
    /// The socket could not be created or configured.
    #[error("creating a socket for {addr}: {source}")]
    Socket {
        /// The address it was meant for.
        addr: SocketAddr,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The last address tried refused or failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The last address tried did not answer in time.
    #[error("connecting to {addr}: no answer within {timeout:?}")]
    Timeout {
        /// The address.
        addr: SocketAddr,
        /// The limit that was hit.
        timeout: Duration,
    },
}

impl ConnectError {
    /// The response flag this failure is reported with.
    pub fn flag(&self) -> ResponseFlag {
        ResponseFlag::UpstreamConnectionFailure
    }
}

/// Tries `addrs` in order; returns the first connection made and its address,
/// or the last address's error.
pub async fn connect_first(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut last = ConnectError::NoAddress;
    for &addr in addrs {
        match connect(addr).await {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "upstream address failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// One marked connection to `addr`, within [`CONNECT_TIMEOUT`].
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, ConnectError> {
    let socket = marked_socket(addr).map_err(|source| ConnectError::Socket { addr, source })?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout {
            addr,
            timeout: CONNECT_TIMEOUT,
        })?
        .map_err(|source| ConnectError::Connect { addr, source })?;
    // Requests and small responses should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A non-blocking TCP socket for `addr`'s family, marked with
/// [`egret_common::EGRET_MARK`].
fn marked_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Err(e) = socket.set_mark(egret_common::EGRET_MARK) {
        // Only a process without CAP_NET_ADMIN gets EPERM, and such a
        // process cannot load the capture programs either: nothing to loop.
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
    }
    socket.set_nonblocking(true)?;
    Ok(TcpSocket::from_std_stream(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn tries_addresses_in_order_until_one_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        // A port that was just free: nothing listens there.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (_stream, used) = connect_first(&[dead, good]).await.unwrap();
        assert_eq!(used, good);
    }

    #[tokio::test]
    async fn reports_the_last_failure() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = connect_first(&[dead]).await.unwrap_err();
        assert!(matches!(err, ConnectError::Connect { addr, .. } if addr == dead));
        assert!(matches!(
            connect_first(&[]).await,
            Err(ConnectError::NoAddress)
        ));
    }

    #[tokio::test]
    async fn upstream_sockets_carry_the_mark() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = connect(listener.local_addr().unwrap()).await.unwrap();
        let mark = socket2::SockRef::from(&stream).mark().unwrap();
        // Without CAP_NET_ADMIN no mark can be set (and nothing captures).
        let probe = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let can_mark = probe.set_mark(1).is_ok();
        assert_eq!(mark == egret_common::EGRET_MARK, can_mark);
    }
}

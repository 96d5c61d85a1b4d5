//! The agent's own sockets, all made here: TCP and UDP, each carrying
//! egret's mark ([`egret_common::EGRET_MARK`]), so a socket the agent opens
//! toward an upstream, a waypoint or a resolver is told apart from a
//! workload's in every trace of it (the kernel programs never capture the
//! agent anyway: its sockets live in its own, never enrolled, namespace).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// How long one address may take to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no connection could be made.
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

/// One marked connection to `addr`, within [`CONNECT_TIMEOUT`], Nagle off.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, ConnectError> {
    let socket = tcp(addr).map_err(|source| ConnectError::Socket { addr, source })?;
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

/// A marked, non-blocking TCP socket of `addr`'s family.
pub fn tcp(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    mark(SockRef::from(&socket))?;
    socket.set_nonblocking(true)?;
    Ok(TcpSocket::from_std_stream(socket.into()))
}

/// A marked UDP socket bound to `local` (not connected).
pub fn udp_bound(local: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    mark(SockRef::from(&socket))?;
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

/// A marked UDP socket connected to `peer`, so the kernel drops datagrams
/// from anyone else and reports ICMP unreachable as an error.
pub fn udp_to(peer: SocketAddr) -> io::Result<UdpSocket> {
    let local = match peer {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = udp_bound(local)?;
    SockRef::from(&socket).connect(&peer.into())?;
    Ok(socket)
}

/// Sets SO_MARK. Only a process without CAP_NET_ADMIN gets EPERM (an
/// unprivileged test, where nothing captures anyway): the socket is then
/// used unmarked.
fn mark(socket: SockRef<'_>) -> io::Result<()> {
    match socket.set_mark(egret_common::EGRET_MARK) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A port that was just free: nothing listens there.
    fn dead() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    /// The mark a socket of this process gets (none without CAP_NET_ADMIN).
    fn expected_mark() -> u32 {
        let probe = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        match probe.set_mark(egret_common::EGRET_MARK) {
            Ok(()) => egret_common::EGRET_MARK,
            Err(_) => 0,
        }
    }

    #[tokio::test]
    async fn tries_addresses_in_order_until_one_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        let (_stream, used) = connect_first(&[dead(), good]).await.unwrap();
        assert_eq!(used, good);
    }

    #[tokio::test]
    async fn reports_the_last_failure() {
        let dead = dead();
        let err = connect_first(&[dead]).await.unwrap_err();
        assert!(matches!(err, ConnectError::Connect { addr, .. } if addr == dead));
        assert!(matches!(
            connect_first(&[]).await,
            Err(ConnectError::NoAddress)
        ));
    }

    #[tokio::test]
    async fn tcp_and_udp_sockets_carry_the_mark() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = connect(listener.local_addr().unwrap()).await.unwrap();
        assert_eq!(SockRef::from(&stream).mark().unwrap(), expected_mark());
        let udp = udp_bound("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(SockRef::from(&udp).mark().unwrap(), expected_mark());
    }

    #[tokio::test]
    async fn udp_socket_is_connected_to_its_peer() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = peer.local_addr().unwrap();
        let socket = udp_to(addr).unwrap();
        assert_eq!(socket.peer_addr().unwrap(), addr);
        socket.send(b"ping").await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, socket.local_addr().unwrap());
    }
}

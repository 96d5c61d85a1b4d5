//! Sockets toward DNS upstreams. Each carries egret's mark so the kernel
//! programs never capture the agent's own queries (no loop back into the
//! proxy).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use egret_common::EGRET_MARK;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// A UDP socket connected to `upstream`, so the kernel drops datagrams from
/// anyone else and reports ICMP unreachable as an error.
pub(crate) fn udp_to(upstream: SocketAddr) -> io::Result<UdpSocket> {
    let local = match upstream {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = udp_bound(local)?;
    socket2::SockRef::from(&socket).connect(&upstream.into())?;
    Ok(socket)
}

/// A marked UDP socket bound to `local` (not connected).
pub(crate) fn udp_bound(local: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    mark(SockRef::from(&socket))?;
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

/// A marked TCP connection to `upstream`.
pub(crate) async fn tcp_to(upstream: SocketAddr) -> io::Result<TcpStream> {
    let socket = match upstream {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    mark(SockRef::from(&socket))?;
    socket.connect(upstream).await
}

/// Sets SO_MARK. Needs CAP_NET_ADMIN; without it (unprivileged tests, where
/// nothing captures anyway) the socket is used unmarked.
fn mark(socket: SockRef<'_>) -> io::Result<()> {
    match socket.set_mark(EGRET_MARK) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_socket_is_connected_to_the_upstream() {
        let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = upstream.local_addr().unwrap();
        let socket = udp_to(addr).unwrap();
        assert_eq!(socket.peer_addr().unwrap(), addr);
        socket.send(b"ping").await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = upstream.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, socket.local_addr().unwrap());
    }

    #[tokio::test]
    async fn tcp_connects_to_the_upstream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stream, accepted) = tokio::join!(tcp_to(addr), listener.accept());
        assert_eq!(stream.unwrap().peer_addr().unwrap(), addr);
        accepted.unwrap();
    }

    #[tokio::test]
    async fn sockets_carry_the_mark_when_the_process_may_set_it() {
        let socket = udp_bound("127.0.0.1:0".parse().unwrap()).unwrap();
        let probe = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let expected = match probe.set_mark(EGRET_MARK) {
            Ok(()) => EGRET_MARK,
            Err(_) => 0,
        };
        assert_eq!(SockRef::from(&socket).mark().unwrap(), expected);
    }
}

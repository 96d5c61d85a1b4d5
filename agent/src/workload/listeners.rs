//! The agent's sockets inside a workload's network namespace, where the
//! kernel programs send the workload's captured connects (as ztunnel does:
//! `127.0.0.1:15001` in the pod *is* the proxy).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;

use egret_common::{DNS_PORT, OUTBOUND_PORT};

use super::error::WorkloadError;
use super::netns;
use crate::kernel::netns_cookie_of;

/// Listeners bound inside one workload's namespace (std sockets, not yet
/// registered with tokio).
pub struct NetnsSockets {
    /// Cookie of the namespace (`SO_NETNS_COOKIE`), the kernel maps' key.
    pub netns_cookie: u64,
    pub outbound: Vec<TcpListener>,
    pub dns_udp: Vec<UdpSocket>,
    pub dns_tcp: Vec<TcpListener>,
}

/// Binds the outbound and DNS listeners on 127.0.0.1 and ::1 inside the
/// namespace at `path`. IPv6 is skipped when the namespace has it disabled.
pub fn bind_in(path: &Path) -> Result<NetnsSockets, WorkloadError> {
    netns::run_in(path, || {
        let v4 = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let v6 = |port| SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let outbound4 = tcp(v4(OUTBOUND_PORT))?;
        let netns_cookie = netns_cookie_of(outbound4.as_fd()).map_err(WorkloadError::io(
            "read the namespace cookie (SO_NETNS_COOKIE)",
        ))?;
        let mut sockets = NetnsSockets {
            netns_cookie,
            outbound: vec![outbound4],
            dns_udp: vec![udp(v4(DNS_PORT))?],
            dns_tcp: vec![tcp(v4(DNS_PORT))?],
        };
        if let Ok(l) = tcp(v6(OUTBOUND_PORT)) {
            sockets.outbound.push(l);
            sockets.dns_udp.push(udp(v6(DNS_PORT))?);
            sockets.dns_tcp.push(tcp(v6(DNS_PORT))?);
        }
        Ok(sockets)
    })
}

fn tcp(addr: SocketAddr) -> Result<TcpListener, WorkloadError> {
    let l = TcpListener::bind(addr).map_err(WorkloadError::io(format!("bind {addr}")))?;
    l.set_nonblocking(true)
        .map_err(WorkloadError::io("set nonblocking"))?;
    Ok(l)
}

fn udp(addr: SocketAddr) -> Result<UdpSocket, WorkloadError> {
    let s = UdpSocket::bind(addr).map_err(WorkloadError::io(format!("bind udp {addr}")))?;
    s.set_nonblocking(true)
        .map_err(WorkloadError::io("set nonblocking"))?;
    Ok(s)
}

//! Trivial servers: accept-and-close TCP, UDP echo. Both stop at a deadline.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

/// Arguments of `accept`.
#[derive(clap::Args)]
pub struct AcceptArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Exit after this long.
    #[arg(long, default_value_t = 60_000)]
    duration_ms: u64,
    /// Set IP_TRANSPARENT (a TPROXY target must).
    #[arg(long)]
    transparent: bool,
    /// Consume each connection's record in this pinned ORIG_DST map, as
    /// the agent's listener does.
    #[arg(long)]
    orig_dst: Option<std::path::PathBuf>,
}

/// Accepts and drops connections until the deadline; returns the count.
pub fn accept(args: AcceptArgs) -> anyhow::Result<String> {
    let listener = listen(args.listen, args.transparent)?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_millis(args.duration_ms);
    let mut accepted = 0u64;
    let mut records = args.orig_dst.map(crate::orig_dst::OrigDstMap::new);
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, peer)) => {
                accepted += 1;
                if let Some(map) = &mut records {
                    map.take(&stream, peer.port());
                }
                if accepted.is_multiple_of(100_000) {
                    eprintln!(
                        "accepted {accepted}, records taken {}",
                        records.as_ref().map_or(0, |m| m.taken)
                    );
                }
            }
            // Idle: wait for the listener, at most 100 ms (the deadline check).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => poll_in(&listener, 100),
            Err(_) => {}
        }
    }
    let taken = records.map_or(0, |m| m.taken);
    Ok(serde_json::json!({ "accepted": accepted, "orig_dst_taken": taken }).to_string())
}

/// An IPv4 listener with a deep backlog (connection-rate runs burst).
fn listen(addr: SocketAddr, transparent: bool) -> anyhow::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        anyhow::bail!("accept listens on IPv4 only");
    };
    let one: libc::c_int = 1;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: plain socket calls on a fresh fd that the TcpListener then owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        anyhow::ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let listener = TcpListener::from_raw_fd(fd);
        let opt =
            |level, name| libc::setsockopt(fd, level, name, (&one as *const libc::c_int).cast(), 4);
        opt(libc::SOL_SOCKET, libc::SO_REUSEADDR);
        if transparent && opt(libc::SOL_IP, libc::IP_TRANSPARENT) != 0 {
            anyhow::bail!("IP_TRANSPARENT: {}", std::io::Error::last_os_error());
        }
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), len) != 0
            || libc::listen(fd, 4096) != 0
        {
            anyhow::bail!("listen on {addr}: {}", std::io::Error::last_os_error());
        }
        Ok(listener)
    }
}

fn poll_in(fd: &impl std::os::fd::AsRawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// Arguments of `udp-echo`.
#[derive(clap::Args)]
pub struct UdpEchoArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Exit after this long.
    #[arg(long, default_value_t = 60_000)]
    duration_ms: u64,
}

/// Echoes datagrams until the deadline; returns the count.
pub fn udp_echo(args: UdpEchoArgs) -> anyhow::Result<String> {
    let socket = UdpSocket::bind(args.listen)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let deadline = Instant::now() + Duration::from_millis(args.duration_ms);
    let mut buf = [0u8; 2048];
    let mut echoed = 0u64;
    while Instant::now() < deadline {
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
            echoed += 1;
        }
    }
    Ok(serde_json::json!({ "echoed": echoed }).to_string())
}

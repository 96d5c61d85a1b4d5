//! The network-namespace cookie of a socket, as the kernel programs see it.

use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_NETNS_COOKIE` (Linux 5.14+); not in every libc binding yet.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// Network-namespace cookie of a socket (getsockopt SOL_SOCKET SO_NETNS_COOKIE = 71).
pub fn netns_cookie_of(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is borrowed for the call; cookie/len point to a u64
    // and its size, which is what the kernel writes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn sockets_of_one_namespace_share_a_cookie() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ca = netns_cookie_of(a.as_fd()).unwrap();
        assert_ne!(ca, 0);
        assert_eq!(ca, netns_cookie_of(b.as_fd()).unwrap());
    }
}

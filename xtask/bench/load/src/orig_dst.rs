//! What the agent's listener does with each captured connection: take its
//! `ORIG_DST` record, with the agent's own call (`egret_common::take_orig_dst`,
//! one lookup-and-delete). The capture bench's listener does the same, so
//! it pays what the agent pays and the map stays as small as under the
//! agent (a listener that never consumes records fills the LRU and every
//! connect pays an eviction).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use egret_common::{take_orig_dst, FlowKey, AF_INET};

/// The pinned `ORIG_DST` map, opened when it appears and again when it is
/// replaced (the bench loads a fresh copy of the programs per run).
pub struct OrigDstMap {
    pin: PathBuf,
    fd: Option<OwnedFd>,
    /// Records consumed.
    pub taken: u64,
}

impl OrigDstMap {
    pub fn new(pin: PathBuf) -> Self {
        OrigDstMap {
            pin,
            fd: None,
            taken: 0,
        }
    }

    /// Looks up and deletes the record of an accepted connection.
    pub fn take(&mut self, accepted: &std::net::TcpStream, peer_port: u16) {
        let Some(key) = flow_key(accepted, peer_port) else {
            return;
        };
        if self.take_once(&key) {
            return;
        }
        // No record: the map may be a previous run's; reopen and retry once.
        self.fd = obj_get(&self.pin);
        self.take_once(&key);
    }

    fn take_once(&mut self, key: &FlowKey) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        let found = matches!(take_orig_dst(fd.as_fd(), key), Ok(Some(_)));
        self.taken += u64::from(found);
        found
    }
}

/// The key sock_ops stored: the listener's netns, the client's port.
fn flow_key(accepted: &std::net::TcpStream, peer_port: u16) -> Option<FlowKey> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 of the stated length.
    let rc = unsafe {
        libc::getsockopt(
            accepted.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(FlowKey::new(cookie, peer_port, AF_INET))
}

const BPF_OBJ_GET: libc::c_long = 7;

fn obj_get(path: &std::path::Path) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    #[repr(C)]
    struct PathAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let attr = PathAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    let fd = bpf(BPF_OBJ_GET, &attr);
    // SAFETY: a new fd from the kernel that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> libc::c_long {
    // SAFETY: `attr` is a #[repr(C)] prefix of bpf_attr for `cmd`, of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    }
}

//! Taking a captured flow's original destination out of `ORIG_DST`: what
//! the agent's outbound listener does with every accepted connection (and
//! the bench's capture listener, so it measures the same thing).
//!
//! One `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (hash and LRU hash maps, Linux
//! 5.14+) instead of a lookup then a delete: half the syscalls, and no
//! window in which a second reader could take the same record.

extern crate std;

use core::ffi::c_long;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::{FlowKey, OrigDst};

/// `enum bpf_cmd` value from the kernel's UAPI (stable ABI).
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: c_long = 21;

/// The `map_elem` part of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Looks up and deletes `key` in the `ORIG_DST` map `map` in one call:
/// `Ok(None)` when there is no record (the caller refuses the flow).
pub fn take_orig_dst(map: BorrowedFd<'_>, key: &FlowKey) -> io::Result<Option<OrigDst>> {
    let mut value = OrigDst::default();
    let attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key as *const FlowKey as u64,
        value: &mut value as *mut OrigDst as u64,
        flags: 0,
    };
    // SAFETY: `attr` is the map_elem prefix of bpf_attr, of the size
    // passed; `key` and `value` point at live values of the map's key and
    // value sizes (FlowKey, OrigDst), which the kernel checks against the map.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            &attr as *const ElemAttr,
            core::mem::size_of::<ElemAttr>() as libc::c_uint,
        )
    };
    if rc >= 0 {
        return Ok(Some(value));
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(err)
    }
}

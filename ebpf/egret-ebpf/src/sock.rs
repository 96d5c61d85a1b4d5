//! sock_create / sock_release: remember which enrolled namespace each of
//! its workloads' sockets belongs to, so the packet program (`egress`) can
//! tell whose packet it sees — including raw sockets, which no connect hook
//! sees, and connections opened before REGISTRY_ONLY was turned on.

use aya_ebpf::{
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock,
    programs::SockContext,
    EbpfContext,
};
use egret_common::{Reason, HOOK_SOCK_CREATE, SOCKETS_PER_NETNS};

use crate::{
    atomic,
    events::Seen,
    maps::{NETNS_SOCKETS, SOCKETS},
    redirect,
    verdict::{deny, ALLOW},
};

/// An inet socket is being created (socket(2), in the creating process).
#[cgroup_sock(sock_create)]
pub fn egret_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the helpers only read the context they are given.
    let netns = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    if redirect::enrollment(netns).is_none() {
        return ALLOW;
    }
    // SAFETY: as above.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // A socket egret cannot track is a socket egret cannot police: refuse it
    // (fail closed) rather than let it out unwatched.
    if !take_slot(netns) || SOCKETS.insert(&cookie, &netns, 0).is_err() {
        return deny(
            Reason::SocketLimit,
            &Seen {
                netns_cookie: netns,
                addr: [0; 16],
                port: 0,
                family: 0,
                proto: 0,
                hook: HOOK_SOCK_CREATE,
                in_process: true,
            },
        );
    }
    ALLOW
}

/// An inet socket is being released (its last close).
#[cgroup_sock(sock_release)]
pub fn egret_sock_release(ctx: SockContext) -> i32 {
    // SAFETY: the helper only reads the context it is given.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    let Some(netns) = (unsafe { SOCKETS.get(&cookie) }).copied() else {
        return ALLOW;
    };
    let _ = SOCKETS.remove(&cookie);
    if let Some(count) = NETNS_SOCKETS.get_ptr_mut(&netns) {
        // SAFETY: a valid map value; the subtraction is atomic.
        unsafe { atomic::add(count, u64::MAX) };
    }
    ALLOW
}

/// Counts one more tracked socket for `netns`, unless it is at its limit.
#[inline(always)]
fn take_slot(netns: u64) -> bool {
    if NETNS_SOCKETS.get_ptr(&netns).is_none() {
        // BPF_NOEXIST: a racing first socket of the namespace keeps its 0.
        let _ = NETNS_SOCKETS.insert(&netns, &0, 1);
    }
    let Some(count) = NETNS_SOCKETS.get_ptr_mut(&netns) else {
        return false;
    };
    // SAFETY: a valid map value; the add is atomic. Checking before adding
    // can let a few racing sockets past the limit, never past the table.
    unsafe {
        if *count >= SOCKETS_PER_NETNS {
            return false;
        }
        atomic::add(count, 1);
    }
    true
}

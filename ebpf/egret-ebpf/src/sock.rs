//! sock_create: an inet socket of an enrolled workload that is neither TCP
//! nor UDP (raw, ICMP "ping", …) gets egret's state (its namespace) at
//! creation, since no connect or sendmsg hook will see it: the packet
//! program (`egress`) then knows whose packets it sends. TCP and UDP
//! sockets get their state when they connect or send (`connect`, `dns`),
//! so the common socket pays nothing here.

use aya_ebpf::{
    helpers::bpf_get_netns_cookie, macros::cgroup_sock, programs::SockContext, EbpfContext,
};
use egret_common::{Reason, HOOK_SOCK_CREATE};

use crate::{
    events::Seen,
    maps::SOCK_STATE,
    redirect,
    verdict::{deny, ALLOW},
};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

/// An inet socket is being created (socket(2), in the creating process).
#[cgroup_sock(sock_create)]
pub fn egret_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: `type` and `protocol` are readable in sock_create programs.
    let (ty, protocol) = unsafe { ((*ctx.sock).type_, (*ctx.sock).protocol) };
    if (ty == SOCK_STREAM && protocol == IPPROTO_TCP) || (ty == SOCK_DGRAM && protocol == IPPROTO_UDP) {
        return ALLOW;
    }
    // SAFETY: the helper only reads the context it is given.
    let netns = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    if redirect::enrollment(netns).is_none() {
        return ALLOW;
    }
    // A socket egret cannot keep state for is a socket egret cannot police:
    // refuse it (fail closed) rather than let it out unwatched.
    let Some(state) = SOCK_STATE.get_or_create(ctx.sock) else {
        return deny(
            Reason::Untracked,
            &Seen {
                netns_cookie: netns,
                addr: [0; 16],
                port: 0,
                family: 0,
                proto: protocol as u8,
                hook: HOOK_SOCK_CREATE,
                in_process: true,
            },
        );
    };
    state.netns_cookie = netns;
    ALLOW
}

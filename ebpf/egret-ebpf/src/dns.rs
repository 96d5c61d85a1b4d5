//! sendmsg4/6 and recvmsg4/6: unconnected UDP of an enrolled workload. DNS
//! (port 53, any server) goes to the agent's DNS listener, and the reply
//! appears to come from the resolver the workload asked (glibc drops
//! replies from any other source); under REGISTRY_ONLY a datagram to any
//! other address outside the registry fails with EPERM.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use aya_log_ebpf::debug;
use egret_common::{
    Reason, Stat, DNS_PORT, ENROLL_DNS, ENROLL_REGISTRY_ONLY, HOOK_SENDMSG,
};

use crate::{
    events::Seen,
    maps::PENDING,
    redirect::{self, Record},
    registry,
    sockaddr::{self, Family},
    stats::bump,
    verdict::{deny, ALLOW},
};

/// IP protocol number of UDP, for events.
const IPPROTO_UDP: u8 = 17;

/// IPv4 `sendto`/`sendmsg` with a destination (unconnected UDP).
#[cgroup_sock_addr(sendmsg4)]
pub fn egret_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sendmsg(&ctx, Family::V4)
}

/// IPv6 `sendto`/`sendmsg` with a destination (unconnected UDP).
#[cgroup_sock_addr(sendmsg6)]
pub fn egret_sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sendmsg(&ctx, Family::V6)
}

/// IPv4 `recvfrom`/`recvmsg` asking for the source address.
#[cgroup_sock_addr(recvmsg4)]
pub fn egret_recvmsg4(ctx: SockAddrContext) -> i32 {
    on_recvmsg(&ctx, Family::V4);
    ALLOW
}

/// IPv6 `recvfrom`/`recvmsg` asking for the source address.
#[cgroup_sock_addr(recvmsg6)]
pub fn egret_recvmsg6(ctx: SockAddrContext) -> i32 {
    on_recvmsg(&ctx, Family::V6);
    ALLOW
}

#[inline(always)]
fn on_sendmsg(ctx: &SockAddrContext, family: Family) -> i32 {
    let netns = sockaddr::netns_cookie(ctx);
    let Some(flags) = redirect::enrollment(netns) else {
        return ALLOW;
    };
    let dst = sockaddr::user_addr(ctx, family);
    let seen = Seen {
        netns_cookie: netns,
        addr: dst.addr,
        port: dst.port,
        family: dst.family,
        proto: IPPROTO_UDP,
        hook: HOOK_SENDMSG,
        in_process: true,
    };
    if flags & ENROLL_DNS != 0 && dst.port == 53 {
        redirect::to_agent(ctx, family, &dst, DNS_PORT, &seen, Record::WriteIfChanged);
        bump(Stat::RedirectDns);
        debug!(ctx, "egret: dns sendmsg to {:i}:{} -> agent", dst.addr, dst.port);
        return ALLOW;
    }
    if flags & ENROLL_REGISTRY_ONLY != 0 && !registry::reachable(&dst.addr) {
        return deny(Reason::NotInRegistry, &seen);
    }
    if !redirect::track(ctx, netns) {
        return deny(Reason::Untracked, &seen);
    }
    ALLOW
}

#[inline(always)]
fn on_recvmsg(ctx: &SockAddrContext, family: Family) {
    // Cheap test first: this runs for every UDP receive on the host.
    let src = sockaddr::user_addr(ctx, family);
    if src.port != DNS_PORT || !sockaddr::is_loopback(&src.addr) {
        return;
    }
    // SAFETY: the value is copied out at once.
    let Some(orig) = (unsafe { PENDING.get(sockaddr::socket_cookie(ctx)) }).copied() else {
        return;
    };
    sockaddr::set_user_addr(ctx, family, &orig.addr, orig.port);
    bump(Stat::DnsReplyRestored);
}

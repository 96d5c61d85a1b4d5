//! sendmsg4/6 and recvmsg4/6: unconnected UDP DNS of an enrolled workload
//! goes to the agent's DNS listener, and the reply appears to come from the
//! resolver the workload asked (glibc drops replies from any other source).

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use aya_log_ebpf::debug;
use egret_common::{Stat, DNS_PORT, ENROLL_DNS};

use crate::{
    maps::PENDING,
    redirect,
    sockaddr::{self, Family},
    stats::bump,
};

/// sock_addr programs return 1 to let the syscall proceed.
const ALLOW: i32 = 1;

/// IPv4 `sendto`/`sendmsg` with a destination (unconnected UDP).
#[cgroup_sock_addr(sendmsg4)]
pub fn egret_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sendmsg(&ctx, Family::V4);
    ALLOW
}

/// IPv6 `sendto`/`sendmsg` with a destination (unconnected UDP).
#[cgroup_sock_addr(sendmsg6)]
pub fn egret_sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sendmsg(&ctx, Family::V6);
    ALLOW
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
fn on_sendmsg(ctx: &SockAddrContext, family: Family) {
    let Some(flags) = redirect::enrollment(ctx) else {
        return;
    };
    if flags & ENROLL_DNS == 0 {
        return;
    }
    if sockaddr::is_own_socket(ctx) {
        bump(Stat::SkipOwnSocket);
        return;
    }
    let dst = sockaddr::user_addr(ctx, family);
    if dst.port != 53 {
        return;
    }
    redirect::to_agent(ctx, family, &dst, DNS_PORT);
    bump(Stat::RedirectDns);
    debug!(ctx, "egret: dns sendmsg to {:i}:{} -> agent", dst.addr, dst.port);
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

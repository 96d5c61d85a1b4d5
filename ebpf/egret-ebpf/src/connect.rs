//! connect4/connect6: an enrolled workload's connect to a mesh service goes
//! to the agent's outbound listener, its DNS (TCP or connected UDP) to the
//! agent's DNS listener. Everything else is left alone.

use aya_ebpf::{macros::cgroup_sock_addr, maps::lpm_trie::Key, programs::SockAddrContext};
use aya_log_ebpf::debug;
use egret_common::{
    OrigDst, ServiceKey, Stat, DNS_PORT, ENROLL_DNS, ENROLL_SERVICES, OUTBOUND_PORT,
};

use crate::{
    maps::{SERVICES, SERVICE_RANGES},
    redirect,
    sockaddr::{self, Family, SOCK_DGRAM, SOCK_STREAM},
    stats::bump,
};

/// sock_addr programs return 1 to let the syscall proceed.
const ALLOW: i32 = 1;

/// IPv4 connects (and IPv4 sockets' connected UDP).
#[cgroup_sock_addr(connect4)]
pub fn egret_connect4(ctx: SockAddrContext) -> i32 {
    on_connect(&ctx, Family::V4);
    ALLOW
}

/// IPv6 connects, including v6 sockets reaching IPv4-mapped addresses.
#[cgroup_sock_addr(connect6)]
pub fn egret_connect6(ctx: SockAddrContext) -> i32 {
    on_connect(&ctx, Family::V6);
    ALLOW
}

#[inline(always)]
fn on_connect(ctx: &SockAddrContext, family: Family) {
    let Some(flags) = redirect::enrollment(ctx) else {
        return;
    };
    if sockaddr::is_own_socket(ctx) {
        bump(Stat::SkipOwnSocket);
        return;
    }
    let dst = sockaddr::user_addr(ctx, family);
    let ty = sockaddr::sock_type(ctx);
    if flags & ENROLL_DNS != 0 && dst.port == 53 && (ty == SOCK_STREAM || ty == SOCK_DGRAM) {
        redirect::to_agent(ctx, family, &dst, DNS_PORT);
        bump(Stat::RedirectDns);
        debug!(
            ctx,
            "egret: dns connect to {:i}:{} -> agent", dst.addr, dst.port
        );
        return;
    }
    if flags & ENROLL_SERVICES != 0 && ty == SOCK_STREAM && is_service(&dst) {
        redirect::to_agent(ctx, family, &dst, OUTBOUND_PORT);
        bump(Stat::RedirectService);
        debug!(
            ctx,
            "egret: connect to {:i}:{} -> agent", dst.addr, dst.port
        );
        return;
    }
    bump(Stat::PassthroughEnrolled);
}

/// `SERVICES` holds the exact address and port, or the address with port 0;
/// else `SERVICE_RANGES` holds a prefix covering the address.
#[inline(always)]
fn is_service(dst: &OrigDst) -> bool {
    let mut key = ServiceKey {
        addr: dst.addr,
        port: dst.port,
        _pad: 0,
    };
    if SERVICES.get_ptr(&key).is_some() {
        return true;
    }
    key.port = 0;
    if SERVICES.get_ptr(&key).is_some() {
        return true;
    }
    // A lookup key carries the full address; the trie finds the longest
    // stored prefix of it.
    SERVICE_RANGES.get(Key::new(128, dst.addr)).is_some()
}

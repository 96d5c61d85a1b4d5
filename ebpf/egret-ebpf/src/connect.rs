//! connect4/connect6: an enrolled workload's connect to a mesh service goes
//! to the agent's outbound listener, its DNS (TCP or connected UDP) to the
//! agent's DNS listener; under REGISTRY_ONLY a connect anywhere else outside
//! the registry fails with EPERM. Everything else is left alone.
//!
//! TCP Fast Open (`sendto(MSG_FASTOPEN)`, `TCP_FASTOPEN_CONNECT`) goes
//! through the same hook: the kernel runs it before the implicit connect.

use aya_ebpf::{macros::cgroup_sock_addr, maps::lpm_trie::Key, programs::SockAddrContext};
use aya_log_ebpf::debug;
use egret_common::{
    OrigDst, Reason, ServiceKey, Stat, DNS_PORT, ENROLL_DNS, ENROLL_REGISTRY_ONLY,
    ENROLL_SERVICES, FEATURE_RANGES, HOOK_CONNECT, OUTBOUND_PORT,
};

use crate::{
    events::Seen,
    maps::{FEATURES, SERVICES, SERVICE_RANGES},
    redirect::{self, Record},
    registry,
    sockaddr::{self, Family, SOCK_DGRAM, SOCK_STREAM},
    stats::bump,
    verdict::{deny, ALLOW},
};

/// IP protocol numbers for events.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// IPv4 connects (and IPv4 sockets' connected UDP).
#[cgroup_sock_addr(connect4)]
pub fn egret_connect4(ctx: SockAddrContext) -> i32 {
    on_connect(&ctx, Family::V4)
}

/// IPv6 connects, including v6 sockets reaching IPv4-mapped addresses.
#[cgroup_sock_addr(connect6)]
pub fn egret_connect6(ctx: SockAddrContext) -> i32 {
    on_connect(&ctx, Family::V6)
}

#[inline(always)]
fn on_connect(ctx: &SockAddrContext, family: Family) -> i32 {
    let netns = sockaddr::netns_cookie(ctx);
    // Not enrolled (the host, other pods): one lookup, nothing else.
    let Some(flags) = redirect::enrollment(netns) else {
        return ALLOW;
    };
    let dst = sockaddr::user_addr(ctx, family);
    let ty = sockaddr::sock_type(ctx);
    let seen = Seen {
        netns_cookie: netns,
        addr: dst.addr,
        port: dst.port,
        family: dst.family,
        proto: match ty {
            SOCK_STREAM => IPPROTO_TCP,
            SOCK_DGRAM => IPPROTO_UDP,
            _ => 0,
        },
        hook: HOOK_CONNECT,
        in_process: true,
    };
    if flags & ENROLL_DNS != 0 && dst.port == 53 && (ty == SOCK_STREAM || ty == SOCK_DGRAM) {
        redirect::to_agent(ctx, family, &dst, DNS_PORT, &seen, Record::Write);
        bump(Stat::RedirectDns);
        debug!(ctx, "egret: dns connect to {:i}:{} -> agent", dst.addr, dst.port);
        return ALLOW;
    }
    if flags & ENROLL_SERVICES != 0 && ty == SOCK_STREAM && is_service(&dst) {
        redirect::to_agent(ctx, family, &dst, OUTBOUND_PORT, &seen, Record::Write);
        bump(Stat::RedirectService);
        debug!(ctx, "egret: connect to {:i}:{} -> agent", dst.addr, dst.port);
        return ALLOW;
    }
    if flags & ENROLL_REGISTRY_ONLY != 0 && !registry::reachable(&dst.addr) {
        debug!(ctx, "egret: connect to {:i}:{} refused: not in the registry", dst.addr, dst.port);
        return deny(Reason::NotInRegistry, &seen);
    }
    // Let through: watched by the packet program from here on (so it stops
    // if the namespace turns REGISTRY_ONLY while it is open).
    if !redirect::track(ctx, netns) {
        return deny(Reason::Untracked, &seen);
    }
    bump(Stat::PassthroughEnrolled);
    ALLOW
}

/// `SERVICES` holds the address (every port), else `SERVICE_RANGES` holds a
/// prefix covering it — looked up only when it holds any.
#[inline(always)]
fn is_service(dst: &OrigDst) -> bool {
    let key = ServiceKey {
        addr: dst.addr,
        port: 0,
        _pad: 0,
    };
    if SERVICES.get_ptr(&key).is_some() {
        return true;
    }
    let ranges = FEATURES.get(0).is_some_and(|f| f & FEATURE_RANGES != 0);
    // A lookup key carries the full address; the trie finds the longest
    // stored prefix of it.
    ranges && SERVICE_RANGES.get(Key::new(128, dst.addr)).is_some()
}

//! The one redirect every capture shares: remember where the socket was
//! going (on the socket itself), then point it at one of the agent's
//! loopback listeners.

use aya_ebpf::programs::SockAddrContext;
use egret_common::{OrigDst, EVENT_REDIRECT};

use crate::{
    events::{self, Seen},
    maps::{ENROLLED, PENDING, SOCK_STATE},
    sockaddr::{self, Family},
};

/// The `ENROLL_*` flags of the netns with `cookie`, or `None` when it is
/// not enrolled.
#[inline(always)]
pub fn enrollment(cookie: u64) -> Option<u32> {
    // SAFETY: the value is copied out at once; a concurrent delete can at
    // worst hand us stale flags for this one socket.
    unsafe { ENROLLED.get(&cookie) }.map(|e| e.flags)
}

/// Notes the socket's namespace in its state (creating it), so the packet
/// program knows whose packets it sends; `false` when the kernel had no
/// memory for it.
#[inline(always)]
pub fn track(ctx: &SockAddrContext, netns_cookie: u64) -> bool {
    match SOCK_STATE.get_or_create(sockaddr::sock(ctx)) {
        Some(state) => {
            state.netns_cookie = netns_cookie;
            true
        }
        None => false,
    }
}

/// Whether the socket may already hold a `PENDING` record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A connect: a fresh record (looking first would only add a lookup).
    Write,
    /// An unconnected send: the socket often sent to the same resolver
    /// before, and an unchanged record is not written again (an LRU update
    /// allocates and frees a node: ~250 ns against a ~40 ns lookup).
    WriteIfChanged,
}

/// Records `orig` under the socket's cookie in `PENDING` and rewrites the
/// destination to loopback:`port`. (A redirected socket needs no state for
/// the packet program: its packets go to the agent.)
#[inline(always)]
pub fn to_agent(
    ctx: &SockAddrContext,
    family: Family,
    orig: &OrigDst,
    port: u16,
    seen: &Seen,
    record: Record,
) {
    let cookie = sockaddr::socket_cookie(ctx);
    // Redirect even if the record fails: the agent then refuses the flow
    // (FlowMissing) instead of the traffic leaving the node uncontrolled.
    if record == Record::Write || !recorded(cookie, orig) {
        let _ = PENDING.insert(cookie, orig, 0);
    }
    sockaddr::set_user_addr(ctx, family, &sockaddr::loopback(family), port);
    if events::redirects_wanted() {
        events::emit(EVENT_REDIRECT, port, seen);
    }
}

/// Whether `PENDING` already holds `orig` for the socket `cookie` (the
/// lookup also marks it recently used, so the LRU keeps it).
#[inline(always)]
fn recorded(cookie: u64, orig: &OrigDst) -> bool {
    // SAFETY: the value is only read, at once.
    unsafe { PENDING.get(cookie) }.is_some_and(|held| {
        held.port == orig.port && held.family == orig.family && held.addr == orig.addr
    })
}

//! The one redirect every capture shares: remember where the socket was
//! going, then point it at one of the agent's loopback listeners.

use aya_ebpf::programs::SockAddrContext;
use egret_common::{OrigDst, EVENT_REDIRECT};

use crate::{
    events::{self, Seen},
    maps::{ENROLLED, PENDING},
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

/// Records `orig` under the socket's cookie in `PENDING` and rewrites the
/// destination to loopback:`port`.
#[inline(always)]
pub fn to_agent(ctx: &SockAddrContext, family: Family, orig: &OrigDst, port: u16, seen: &Seen) {
    // Redirect even if the record fails: the agent then refuses the flow
    // (FlowMissing) instead of the traffic leaving the node uncontrolled.
    let _ = PENDING.insert(sockaddr::socket_cookie(ctx), orig, 0);
    sockaddr::set_user_addr(ctx, family, &sockaddr::loopback(family), port);
    if events::redirects_wanted() {
        events::emit(EVENT_REDIRECT, port, seen);
    }
}

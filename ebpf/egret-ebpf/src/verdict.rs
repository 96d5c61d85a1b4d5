//! Refusing: one place that counts a denial (globally and per namespace),
//! reports it, and returns the programs' "no".

use egret_common::{DenialKey, Reason, Stat, EVENT_DENIED};

use crate::{
    atomic,
    events::{self, Seen},
    maps::DENIALS,
    stats::bump,
};

/// What cgroup programs return to refuse (the syscall fails with EPERM, a
/// packet is dropped).
pub const DENY: i32 = 0;
/// What cgroup programs return to let things proceed.
pub const ALLOW: i32 = 1;

/// Counts and reports a denial for `reason`, and returns [`DENY`].
#[inline(always)]
pub fn deny(reason: Reason, seen: &Seen) -> i32 {
    bump(match reason {
        Reason::NotInRegistry => Stat::DeniedNotInRegistry,
        Reason::DnsElsewhere => Stat::DeniedDnsElsewhere,
        Reason::PacketNotInRegistry => Stat::DeniedPacket,
        Reason::SocketLimit => Stat::DeniedSocketLimit,
    });
    count(seen.netns_cookie, reason);
    events::emit(EVENT_DENIED, reason as u16, seen);
    DENY
}

/// Adds one to the namespace's counter for `reason`.
#[inline(always)]
fn count(netns_cookie: u64, reason: Reason) {
    let key = DenialKey {
        netns_cookie,
        reason: reason as u16,
        _pad: [0; 3],
    };
    if let Some(counter) = DENIALS.get_ptr_mut(&key) {
        // SAFETY: a valid map value; the add is atomic (several CPUs).
        unsafe { atomic::add(counter, 1) };
        return;
    }
    // First denial of this kind here. Two CPUs racing both insert 1: one
    // count may be lost, once; never a wrong verdict.
    let _ = DENIALS.insert(&key, &1, 0);
}

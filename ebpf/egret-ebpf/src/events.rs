//! Verdict events for `egret monitor` and the access log: a ring buffer
//! with a per-CPU budget, so a workload hammering a denied address cannot
//! flood the agent (what is not sent is still counted).

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use egret_common::{Addr16, Event, Stat, EVENTS_PER_CPU_PER_SECOND, MONITOR_REDIRECTS};

use crate::{
    maps::{EVENTS, EVENT_RATE, MONITOR},
    stats::bump,
};

const NS_PER_SECOND: u64 = 1_000_000_000;

/// What a program saw, for an event.
pub struct Seen {
    pub netns_cookie: u64,
    pub addr: Addr16,
    pub port: u16,
    pub family: u16,
    /// IP protocol, 0 when unknown.
    pub proto: u8,
    /// `HOOK_*`.
    pub hook: u8,
    /// The program runs in the sending process's context (not softirq),
    /// so its pid and comm are the sender's.
    pub in_process: bool,
}

/// Sends one event of `kind` (`EVENT_*`) with `reason`, within the budget.
#[inline(always)]
pub fn emit(kind: u16, reason: u16, seen: &Seen) {
    if !within_budget() {
        bump(Stat::EventsDropped);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        bump(Stat::EventsDropped);
        return;
    };
    let (pid, comm) = if seen.in_process {
        (
            (bpf_get_current_pid_tgid() >> 32) as u32,
            bpf_get_current_comm().unwrap_or([0; 16]),
        )
    } else {
        (0, [0; 16])
    };
    entry.write(Event {
        netns_cookie: seen.netns_cookie,
        addr: seen.addr,
        pid,
        port: seen.port,
        kind,
        reason,
        family: seen.family,
        proto: seen.proto,
        hook: seen.hook,
        _pad: [0; 2],
        comm,
    });
    entry.submit(0);
}

/// Whether someone asked for redirect events (`egret monitor --redirects`).
#[inline(always)]
pub fn redirects_wanted() -> bool {
    MONITOR
        .get(0)
        .is_some_and(|flags| flags & MONITOR_REDIRECTS != 0)
}

/// Takes one event from this CPU's budget for the current second.
#[inline(always)]
fn within_budget() -> bool {
    let Some(window) = EVENT_RATE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: `window` is this CPU's slot, bpf_ktime_get_ns only reads the clock.
    unsafe {
        let now = bpf_ktime_get_ns();
        if now.wrapping_sub((*window).start_ns) >= NS_PER_SECOND {
            (*window).start_ns = now;
            (*window).sent = 0;
        }
        if (*window).sent >= EVENTS_PER_CPU_PER_SECOND {
            return false;
        }
        (*window).sent += 1;
    }
    true
}

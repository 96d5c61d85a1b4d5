//! sock_ops: when a redirected TCP connect completes, file its original
//! destination under the key the agent's listener can compute from the
//! accepted peer (netns cookie, client port, family).

use aya_ebpf::{
    bindings::BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::sock_ops,
    programs::SockOpsContext,
    EbpfContext,
};
use egret_common::{FlowKey, Stat, OUTBOUND_PORT};

use crate::{
    maps::{ENROLLED, ORIG_DST, PENDING},
    stats::bump,
};

/// sock_ops programs return 1 on success.
const OK: u32 = 1;

/// Named apart from its section: `fn sockops` under `#[sock_ops]` fails to link.
#[sock_ops]
pub fn egret_sockops(ctx: SockOpsContext) -> u32 {
    if ctx.op() == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB {
        on_established(&ctx);
    }
    OK
}

#[inline(always)]
fn on_established(ctx: &SockOpsContext) {
    // SAFETY: the helpers only read the context they are given.
    let (cookie, netns) = unsafe {
        (
            bpf_get_socket_cookie(ctx.as_ptr()),
            bpf_get_netns_cookie(ctx.as_ptr()),
        )
    };
    // SAFETY: the value is copied out at once.
    let Some(orig) = (unsafe { PENDING.get(cookie) }).copied() else {
        // A flow to the outbound listener from an enrolled netns with no
        // record: the agent will have to refuse it; count why.
        if remote_port(ctx) == OUTBOUND_PORT && ENROLLED.get_ptr(netns).is_some() {
            bump(Stat::FlowMissing);
        }
        return;
    };
    let key = FlowKey {
        netns_cookie: netns,
        // sock_ops gives local_port in host order, remote_port in network order.
        port: ctx.local_port() as u16,
        family: ctx.family() as u16,
        _pad: 0,
    };
    if ORIG_DST.insert(key, orig, 0).is_ok() {
        bump(Stat::FlowRecorded);
    }
    let _ = PENDING.remove(cookie);
}

/// The peer port in host order. `remote_port` is network order, and on
/// little-endian kernels it sits in the upper 16 bits; older kernels put it
/// in the lower 16. A real port is never 0, so whichever half holds it wins.
#[inline(always)]
fn remote_port(ctx: &SockOpsContext) -> u16 {
    let raw = ctx.remote_port();
    let net = if raw > 0xffff { raw >> 16 } else { raw };
    u16::from_be(net as u16)
}

//! cgroup_skb egress: the packet-level backstop. Every packet a socket of
//! an enrolled workload sends is checked where the connect hooks cannot
//! see it: under REGISTRY_ONLY a packet to outside the registry is dropped
//! (a raw socket, or a connection opened before the mode changed), and a
//! DNS query sent anywhere but to egret's DNS proxy is dropped in every
//! mode (a resolver on another port must not hand out real addresses).

use aya_ebpf::{
    helpers::bpf_get_socket_cookie, macros::cgroup_skb, programs::SkBuffContext, EbpfContext,
};
use egret_common::{
    v4_mapped, Addr16, Reason, AF_INET, AF_INET6, ENROLL_REGISTRY_ONLY, HOOK_EGRESS,
};

use crate::{
    dns_wire, events::Seen, maps::SOCKETS, redirect, registry, sockaddr,
    verdict::{deny, ALLOW},
};

const IPPROTO_UDP: u8 = 17;
/// IPv6 extension headers walked to find the transport header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// How many IPv6 extension headers are walked at most.
const MAX_EXT_HEADERS: usize = 4;

/// One outgoing packet (the context starts at the IP header).
#[cgroup_skb(egress)]
pub fn egret_egress(ctx: SkBuffContext) -> i32 {
    check(&ctx)
}

/// The parts of an IP header the checks need.
struct Packet {
    family: u16,
    daddr: Addr16,
    proto: u8,
    /// Offset of the transport header; `None` for a non-first fragment or
    /// an unparsed extension chain.
    l4: Option<usize>,
}

#[inline(always)]
fn check(ctx: &SkBuffContext) -> i32 {
    // SAFETY: the helper only reads the context (0 when there is no socket).
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // Packets of sockets no enrolled workload created: one lookup, nothing else.
    // SAFETY: the value is copied out at once.
    let Some(netns) = (unsafe { SOCKETS.get(&cookie) }).copied() else {
        return ALLOW;
    };
    let Some(flags) = redirect::enrollment(netns) else {
        return ALLOW;
    };
    let Some(pkt) = parse(ctx) else {
        // Not IP: an inet socket sends nothing else.
        return ALLOW;
    };
    // Captured flows and the agent's listeners: the common case.
    if sockaddr::is_loopback(&pkt.daddr) {
        return ALLOW;
    }
    let seen = Seen {
        netns_cookie: netns,
        addr: pkt.daddr,
        port: 0,
        family: pkt.family,
        proto: pkt.proto,
        hook: HOOK_EGRESS,
        in_process: false,
    };
    if flags & ENROLL_REGISTRY_ONLY != 0 && !registry::reachable(&pkt.daddr) {
        return deny(Reason::PacketNotInRegistry, &seen);
    }
    if pkt.proto == IPPROTO_UDP {
        if let Some(l4) = pkt.l4 {
            if let Some(port) = dns_wire::udp_dns_query(ctx, l4) {
                return deny(Reason::DnsElsewhere, &Seen { port, ..seen });
            }
        }
    }
    ALLOW
}

#[inline(always)]
fn parse(ctx: &SkBuffContext) -> Option<Packet> {
    let first: u8 = ctx.load(0).ok()?;
    match first >> 4 {
        4 => parse_v4(ctx),
        6 => parse_v6(ctx),
        _ => None,
    }
}

#[inline(always)]
fn parse_v4(ctx: &SkBuffContext) -> Option<Packet> {
    let hdr: [u8; 20] = ctx.load(0).ok()?;
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    let frag_offset = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
    Some(Packet {
        family: AF_INET,
        daddr: v4_mapped([hdr[16], hdr[17], hdr[18], hdr[19]]),
        proto: hdr[9],
        l4: (frag_offset == 0 && ihl >= 20).then_some(ihl),
    })
}

#[inline(always)]
fn parse_v6(ctx: &SkBuffContext) -> Option<Packet> {
    let hdr: [u8; 40] = ctx.load(0).ok()?;
    let mut daddr = [0u8; 16];
    daddr.copy_from_slice(&hdr[24..40]);
    let mut next = hdr[6];
    let mut offset = 40usize;
    let mut l4 = None;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let ext: [u8; 2] = ctx.load(offset).ok()?;
                next = ext[0];
                offset += (usize::from(ext[1]) + 1) * 8;
            }
            IPV6_FRAGMENT => {
                let ext: [u8; 4] = ctx.load(offset).ok()?;
                next = ext[0];
                offset += 8;
                if u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 != 0 {
                    // A later fragment: no transport header to read.
                    return Some(Packet {
                        family: AF_INET6,
                        daddr,
                        proto: next,
                        l4: None,
                    });
                }
            }
            _ => {
                l4 = Some(offset);
                break;
            }
        }
    }
    Some(Packet {
        family: AF_INET6,
        daddr,
        proto: next,
        l4,
    })
}

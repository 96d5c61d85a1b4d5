//! Recognising a standard DNS query in a UDP datagram, for the packet
//! program. Deliberately strict, so nothing but a DNS query is ever taken
//! for one: QR=0, opcode QUERY, exactly one question, no answer or
//! authority records, at most one additional record which must be EDNS
//! OPT, a well-formed uncompressed name, class IN or ANY, and nothing after.

use aya_ebpf::programs::SkBuffContext;

/// DNS header length.
const HEADER: usize = 12;
/// At most this many labels are walked (a name has at most 127).
const MAX_LABELS: usize = 128;
/// RR type OPT (EDNS).
const TYPE_OPT: u16 = 41;
/// Classes of an address lookup: IN, ANY.
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
/// A root-name OPT record: name (1), type (2), class (2), ttl (4), rdlen (2).
const OPT_RR_MIN: usize = 11;

/// The destination port when the UDP datagram at `l4` holds a DNS query.
#[inline(always)]
pub fn udp_dns_query(ctx: &SkBuffContext, l4: usize) -> Option<u16> {
    let udp: [u8; 8] = ctx.load(l4).ok()?;
    let port = u16::from_be_bytes([udp[2], udp[3]]);
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    let start = l4 + 8;
    let end = start + udp_len.checked_sub(8)?;
    if end > ctx.len() as usize {
        return None;
    }
    is_query(ctx, start, end).then_some(port)
}

#[inline(always)]
fn is_query(ctx: &SkBuffContext, start: usize, end: usize) -> bool {
    let Ok(h) = ctx.load::<[u8; HEADER]>(start) else {
        return false;
    };
    let be = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let qr = h[2] & 0x80;
    let opcode = (h[2] >> 3) & 0x0f;
    let (qd, an, ns, ar) = (be(4), be(6), be(8), be(10));
    if qr != 0 || opcode != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return false;
    }
    let Some(mut offset) = name_end(ctx, start + HEADER, end) else {
        return false;
    };
    let Ok(q) = ctx.load::<[u8; 4]>(offset) else {
        return false;
    };
    let class = u16::from_be_bytes([q[2], q[3]]);
    if class != CLASS_IN && class != CLASS_ANY {
        return false;
    }
    offset += 4;
    if ar == 0 {
        return offset == end;
    }
    if offset + OPT_RR_MIN > end {
        return false;
    }
    let Ok(opt) = ctx.load::<[u8; 3]>(offset) else {
        return false;
    };
    opt[0] == 0 && u16::from_be_bytes([opt[1], opt[2]]) == TYPE_OPT
}

/// The offset just past a well-formed uncompressed name starting at
/// `offset` and ending before `end`.
#[inline(always)]
fn name_end(ctx: &SkBuffContext, mut offset: usize, end: usize) -> Option<usize> {
    for _ in 0..MAX_LABELS {
        let len = usize::from(ctx.load::<u8>(offset).ok()?);
        offset += 1;
        if len == 0 {
            return (offset <= end).then_some(offset);
        }
        if len > 63 {
            return None;
        }
        offset += len;
        if offset >= end {
            return None;
        }
    }
    None
}

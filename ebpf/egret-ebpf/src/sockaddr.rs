//! Reading and writing the socket address a cgroup `sock_addr` program sees.
//!
//! `user_ip4`/`user_ip6` hold network-order bytes and `user_port` a
//! network-order port in its low 16 bits; everything handed out here is the
//! maps' form (16-byte address, host-order port).

use aya_ebpf::{
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    programs::SockAddrContext,
    EbpfContext,
};
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use egret_common::{v4_mapped, Addr16, OrigDst, AF_INET, AF_INET6};

/// `SOCK_STREAM` from the socket's `type`.
pub const SOCK_STREAM: u32 = 1;
/// `SOCK_DGRAM` from the socket's `type`.
pub const SOCK_DGRAM: u32 = 2;

/// `127.0.0.1`, mapped.
const LOOPBACK4: Addr16 = v4_mapped([127, 0, 0, 1]);
/// `::1`.
const LOOPBACK6: Addr16 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Which half of the context the program's attach point fills.
#[derive(Clone, Copy)]
pub enum Family {
    /// connect4, sendmsg4, recvmsg4: `user_ip4`.
    V4,
    /// connect6, sendmsg6, recvmsg6: `user_ip6`.
    V6,
}

/// Cookie of the socket's network namespace (kernel 5.7+ for sock_addr).
#[inline(always)]
pub fn netns_cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the helper only reads the context it is given.
    unsafe { bpf_get_netns_cookie(ctx.as_ptr()) }
}

/// Cookie of the socket itself, stable for its lifetime (kernel 4.12+).
#[inline(always)]
pub fn socket_cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the helper only reads the context it is given.
    unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }
}

/// The socket's type (`SOCK_STREAM`, `SOCK_DGRAM`, …).
#[inline(always)]
pub fn sock_type(ctx: &SockAddrContext) -> u32 {
    // SAFETY: `type` is readable in every sock_addr program.
    unsafe { (*ctx.sock_addr).type_ }
}

/// The address the program may rewrite (the destination for connect and
/// sendmsg, the source for recvmsg), in the maps' form.
#[inline(always)]
pub fn user_addr(ctx: &SockAddrContext, family: Family) -> OrigDst {
    // SAFETY: 4-byte loads of user_* fields are what the verifier allows;
    // volatile keeps the compiler from merging them into wider loads.
    unsafe {
        let sa = ctx.sock_addr;
        let port = u16::from_be(read_volatile(addr_of!((*sa).user_port)) as u16);
        match family {
            Family::V4 => {
                let ip = read_volatile(addr_of!((*sa).user_ip4));
                OrigDst {
                    addr: v4_mapped(ip.to_ne_bytes()),
                    port,
                    family: AF_INET,
                }
            }
            Family::V6 => {
                let mut addr = [0u8; 16];
                for (i, chunk) in addr.chunks_exact_mut(4).enumerate() {
                    let word = read_volatile(addr_of!((*sa).user_ip6[i]));
                    chunk.copy_from_slice(&word.to_ne_bytes());
                }
                // A v6 socket reaching an IPv4 host uses a mapped address;
                // the agent dials the IPv4 address.
                let family = if is_v4_mapped(&addr) { AF_INET } else { AF_INET6 };
                OrigDst { addr, port, family }
            }
        }
    }
}

/// Overwrites the rewritable address with `addr`:`port` (host order).
#[inline(always)]
pub fn set_user_addr(ctx: &SockAddrContext, family: Family, addr: &Addr16, port: u16) {
    // SAFETY: 4-byte stores of user_* fields are what the verifier allows.
    unsafe {
        let sa = ctx.sock_addr;
        match family {
            Family::V4 => {
                let ip = u32::from_ne_bytes([addr[12], addr[13], addr[14], addr[15]]);
                write_volatile(addr_of_mut!((*sa).user_ip4), ip);
            }
            Family::V6 => {
                for i in 0..4 {
                    let b = i * 4;
                    let word = u32::from_ne_bytes([addr[b], addr[b + 1], addr[b + 2], addr[b + 3]]);
                    write_volatile(addr_of_mut!((*sa).user_ip6[i]), word);
                }
            }
        }
        write_volatile(addr_of_mut!((*sa).user_port), u32::from(port.to_be()));
    }
}

/// Loopback of the program's family: where the agent's listeners are.
#[inline(always)]
pub fn loopback(family: Family) -> Addr16 {
    match family {
        Family::V4 => LOOPBACK4,
        Family::V6 => LOOPBACK6,
    }
}

/// Whether `addr` is loopback (`127.0.0.1`, `::1`, or mapped `127.0.0.1`).
#[inline(always)]
pub fn is_loopback(addr: &Addr16) -> bool {
    *addr == LOOPBACK4 || *addr == LOOPBACK6
}

#[inline(always)]
fn is_v4_mapped(addr: &Addr16) -> bool {
    addr[..10].iter().all(|b| *b == 0) && addr[10] == 0xff && addr[11] == 0xff
}

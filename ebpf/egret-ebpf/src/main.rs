//! egret's kernel programs, attached once at the cgroup v2 root.
//!
//! They act only for sockets whose network namespace is in `ENROLLED`:
//! [`connect`] sends connects to mesh services and DNS to the agent and,
//! under REGISTRY_ONLY, refuses connects outside the registry; [`dns`] does
//! the same for unconnected UDP and restores DNS replies' source; [`sockops`]
//! hands the original destination of each captured TCP flow to the agent;
//! [`sock`] remembers the namespace of each enrolled socket so [`egress`]
//! can police packets no connect hook saw. [`maps`] declares every map,
//! [`verdict`] refuses, [`stats`] and [`events`] report.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod atomic;
mod connect;
mod dns;
mod dns_wire;
mod egress;
mod events;
mod maps;
mod redirect;
mod registry;
mod sock;
mod sockaddr;
mod sockops;
mod stats;
mod verdict;

/// The verifier proves programs never panic; this only satisfies `no_std`.
#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Kernel programs must declare a GPL-compatible license to call GPL helpers
/// (the netns and socket cookies).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

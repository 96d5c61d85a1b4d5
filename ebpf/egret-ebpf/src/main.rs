//! egret's kernel programs, attached once at the cgroup v2 root.
//!
//! They act only for sockets whose network namespace is in `ENROLLED`:
//! [`connect`] sends connects to mesh services and DNS to the agent,
//! [`dns`] does the same for unconnected UDP DNS and restores the reply's
//! source, [`sockops`] hands the original destination of each captured TCP
//! flow to the agent. [`maps`] declares every map; [`stats`] counts verdicts.
#![no_std]
#![no_main]

mod connect;
mod dns;
mod maps;
mod redirect;
mod sockaddr;
mod sockops;
mod stats;

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

//! Reading the kernel's verdict events (`EVENTS` ring buffer) as they come.

use std::net::{IpAddr, Ipv6Addr};

use aya::maps::{MapData, RingBuf};
use egret_common::{
    Event, Reason, AF_INET, EVENT_DENIED, EVENT_REDIRECT, HOOK_CONNECT, HOOK_EGRESS, HOOK_SENDMSG,
    HOOK_SOCK_CREATE,
};
use tokio::io::unix::AsyncFd;

/// One kernel verdict, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelEvent {
    /// Network namespace of the workload.
    pub netns_cookie: u64,
    /// Refused, or redirected to the agent.
    pub verdict: Verdict,
    /// The destination.
    pub addr: IpAddr,
    /// Destination port (0 when the program did not see one).
    pub port: u16,
    /// `tcp`, `udp`, or the protocol number.
    pub proto: String,
    /// Which hook saw it: `connect`, `sendmsg`, `egress`, `socket`.
    pub hook: &'static str,
    /// Sending process (0 when not known).
    pub pid: u32,
    /// Its command name.
    pub comm: String,
}

/// What the kernel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused, for this reason.
    Denied(Reason),
    /// Sent to the agent's listener on this port.
    Redirected(u16),
}

impl KernelEvent {
    /// Decodes a ring-buffer record; `None` for a record of another size or kind.
    pub fn decode(bytes: &[u8]) -> Option<KernelEvent> {
        if bytes.len() != std::mem::size_of::<Event>() {
            return None;
        }
        // SAFETY: the length matches and `Event` is plain old data
        // (#[repr(C)], every bit pattern valid); read_unaligned copies it.
        let e: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let verdict = match e.kind {
            EVENT_DENIED => Verdict::Denied(Reason::from_u16(e.reason)?),
            EVENT_REDIRECT => Verdict::Redirected(e.reason),
            _ => return None,
        };
        let addr = IpAddr::V6(Ipv6Addr::from(e.addr)).to_canonical();
        let addr = match (e.family, addr) {
            (AF_INET, IpAddr::V6(v6)) if v6.is_unspecified() => IpAddr::from([0, 0, 0, 0]),
            (_, a) => a,
        };
        let end = e.comm.iter().position(|b| *b == 0).unwrap_or(e.comm.len());
        Some(KernelEvent {
            netns_cookie: e.netns_cookie,
            verdict,
            addr,
            port: e.port,
            proto: match e.proto {
                6 => "tcp".into(),
                17 => "udp".into(),
                0 => "-".into(),
                n => n.to_string(),
            },
            hook: match e.hook {
                HOOK_CONNECT => "connect",
                HOOK_SENDMSG => "sendmsg",
                HOOK_EGRESS => "egress",
                HOOK_SOCK_CREATE => "socket",
                _ => "-",
            },
            pid: e.pid,
            comm: String::from_utf8_lossy(&e.comm[..end]).into_owned(),
        })
    }
}

/// Calls `deliver` with every event the kernel sends, until the task is
/// dropped.
pub async fn read_events(mut ring: RingBuf<MapData>, mut deliver: impl FnMut(KernelEvent)) {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd belongs to `ring`, which this task owns for as long as
    // the registration lives.
    let Ok(fd) = (unsafe { AsyncFd::register(ring.as_raw_fd()) }) else {
        tracing::warn!("kernel events will not be read (ring buffer not pollable)");
        return;
    };
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        while let Some(item) = ring.next() {
            if let Some(event) = KernelEvent::decode(&item) {
                deliver(event);
            }
        }
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(e: &Event) -> Vec<u8> {
        // SAFETY: Event is #[repr(C)] plain data.
        unsafe {
            std::slice::from_raw_parts(
                (e as *const Event).cast::<u8>(),
                std::mem::size_of::<Event>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn decodes_a_denial() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let e = Event {
            netns_cookie: 7,
            addr: egret_common::v4_mapped([192, 0, 2, 10]),
            pid: 42,
            port: 80,
            kind: EVENT_DENIED,
            reason: Reason::NotInRegistry as u16,
            family: AF_INET,
            proto: 6,
            hook: HOOK_CONNECT,
            _pad: [0; 2],
            comm,
        };
        let d = KernelEvent::decode(&raw(&e)).unwrap();
        assert_eq!(d.verdict, Verdict::Denied(Reason::NotInRegistry));
        assert_eq!(d.addr, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!(
            (d.port, d.proto.as_str(), d.hook, d.pid),
            (80, "tcp", "connect", 42)
        );
        assert_eq!(d.comm, "curl");
        assert_eq!(KernelEvent::decode(&raw(&e)[1..]), None);
    }
}

//! Types shared by egret's kernel programs and the agent.
//!
//! Each type is defined once, `#[repr(C)]`, with explicit padding so the
//! kernel and userspace agree on its layout byte for byte. With the `user`
//! feature the types implement `aya::Pod` so the agent can use them as map
//! keys and values.
#![no_std]

/// Port the agent's outbound listener binds inside every enrolled netns
/// (127.0.0.1 and ::1). Captured connects are rewritten to it.
pub const OUTBOUND_PORT: u16 = 15001;
/// Port of the agent's DNS listener inside every enrolled netns (UDP and TCP).
pub const DNS_PORT: u16 = 15053;
/// Sockets carrying this mark are the agent's own and are never captured
/// (the same value ztunnel uses).
pub const EGRET_MARK: u32 = 0x539;

/// Address family IPv4 (`OrigDst::family`, `FlowKey::family`).
pub const AF_INET: u16 = 2;
/// Address family IPv6 (`OrigDst::family`, `FlowKey::family`).
pub const AF_INET6: u16 = 10;

/// Capture this netns's connects to mesh services.
pub const ENROLL_SERVICES: u32 = 1 << 0;
/// Capture this netns's DNS (UDP and TCP port 53).
pub const ENROLL_DNS: u32 = 1 << 1;

/// A 16-byte address: IPv6 as is, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
pub type Addr16 = [u8; 16];

/// Map the IPv4 address `a.b.c.d` (octets in network order) to `::ffff:a.b.c.d`.
#[inline(always)]
pub const fn v4_mapped(octets: [u8; 4]) -> Addr16 {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
    ]
}

/// Value of `ENROLLED`, keyed by network-namespace cookie (`bpf_get_netns_cookie`).
/// Writer: agent (workload manager). Readers: connect4/6, sendmsg4/6, sock_ops.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enrollment {
    /// `ENROLL_*` bits.
    pub flags: u32,
    pub _pad: u32,
}

/// Key of `SERVICES`: a mesh service address and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: Addr16,
    /// Host byte order. 0 = every port of `addr` (a VIP is captured whole, so
    /// a connect to an undeclared port reaches the waypoint and is refused
    /// there instead of leaving the node).
    pub port: u16,
    pub _pad: u16,
}

/// A prefix of `SERVICE_RANGES` (ServiceEntry `spec.addresses` CIDRs): the
/// LPM trie key is `prefix_len` then `addr`. Lengths count bits of the
/// 16-byte address, so an IPv4 `/24` is `96 + 24` over `::ffff:a.b.c.0`.
/// Bits past the prefix are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRange {
    /// Prefix length in bits, 0..=128.
    pub prefix_len: u32,
    /// The network address.
    pub addr: Addr16,
}

/// Value of `SERVICES`. Writer: agent (kernel map sync, from the config
/// snapshot). Readers: connect4/6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceValue {
    /// Reserved for per-service capture options; 0 today.
    pub flags: u32,
}

/// An original destination recorded at connect time (value of `PENDING`
/// and `ORIG_DST`). For a v6 socket reaching an IPv4-mapped address,
/// `family` is `AF_INET`: the destination is an IPv4 host.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrigDst {
    pub addr: Addr16,
    /// Host byte order.
    pub port: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
}

/// Key of `ORIG_DST`: the client side of a captured TCP connection as the
/// agent's listener sees it (the listener is inside the client's netns).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub netns_cookie: u64,
    /// The client socket's local port, host byte order.
    pub port: u16,
    pub family: u16,
    pub _pad: u32,
}

/// Indexes of the `STATS` per-CPU counter array: one counter per verdict.
/// Writer: every program. Reader: agent metrics.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// A connect to a mesh service was sent to the outbound listener.
    RedirectService = 0,
    /// A DNS query (connect or sendmsg) was sent to the DNS listener.
    RedirectDns = 1,
    /// A DNS reply's source was restored to the resolver's address.
    DnsReplyRestored = 2,
    /// An enrolled workload connected somewhere that is not a mesh service.
    PassthroughEnrolled = 3,
    /// The socket carried egret's mark and was left alone.
    SkipOwnSocket = 4,
    /// sock_ops moved an original destination to its flow key.
    FlowRecorded = 5,
    /// sock_ops found no pending original destination for a captured flow.
    FlowMissing = 6,
}

/// Number of `Stat` slots.
pub const STAT_COUNT: u32 = 7;

impl Stat {
    /// Every counter, in slot order.
    pub const ALL: [Stat; STAT_COUNT as usize] = [
        Stat::RedirectService,
        Stat::RedirectDns,
        Stat::DnsReplyRestored,
        Stat::PassthroughEnrolled,
        Stat::SkipOwnSocket,
        Stat::FlowRecorded,
        Stat::FlowMissing,
    ];

    /// A stable snake_case name for metrics and status output.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::RedirectService => "redirect_service",
            Stat::RedirectDns => "redirect_dns",
            Stat::DnsReplyRestored => "dns_reply_restored",
            Stat::PassthroughEnrolled => "passthrough_enrolled",
            Stat::SkipOwnSocket => "skip_own_socket",
            Stat::FlowRecorded => "flow_recorded",
            Stat::FlowMissing => "flow_missing",
        }
    }
}

impl FlowKey {
    /// The key of a flow whose client has `port` (host order) in the netns
    /// with `netns_cookie`; `family` is the accepted peer's (`AF_INET`/`AF_INET6`).
    pub const fn new(netns_cookie: u64, port: u16, family: u16) -> Self {
        FlowKey {
            netns_cookie,
            port,
            family,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
impl OrigDst {
    /// The destination as a socket address: `family` `AF_INET` reads the
    /// mapped IPv4 address, anything else the 16 bytes as IPv6.
    pub fn socket_addr(&self) -> core::net::SocketAddr {
        use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
        if self.family == AF_INET {
            let [.., a, b, c, d] = self.addr;
            SocketAddr::from((Ipv4Addr::new(a, b, c, d), self.port))
        } else {
            SocketAddr::from((Ipv6Addr::from(self.addr), self.port))
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all types are #[repr(C)], Copy, with explicit padding and no
    // pointers, so any byte pattern of their size is a valid value.
    unsafe impl aya::Pod for super::Enrollment {}
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::ServiceValue {}
    unsafe impl aya::Pod for super::OrigDst {}
    unsafe impl aya::Pod for super::FlowKey {}
}

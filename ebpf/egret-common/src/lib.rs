//! Types shared by egret's kernel programs and the agent.
//!
//! Each type is defined once, `#[repr(C)]`, with explicit padding so the
//! kernel and userspace agree on its layout byte for byte. With the `user`
//! feature the types implement `aya::Pod` so the agent can use them as map
//! keys and values.
#![no_std]

#[cfg(feature = "take")]
mod take;
#[cfg(feature = "take")]
pub use take::take_orig_dst;

/// Port the agent's outbound listener binds inside every enrolled netns
/// (127.0.0.1 and ::1). Captured connects are rewritten to it.
pub const OUTBOUND_PORT: u16 = 15001;
/// Port of the agent's DNS listener inside every enrolled netns (UDP and TCP).
pub const DNS_PORT: u16 = 15053;
/// Mark on the agent's own sockets (the value ztunnel uses), for routing
/// and for people reading `ss -e`. The kernel programs do NOT exempt marked
/// sockets: a workload with CAP_NET_ADMIN could set any mark. The agent's
/// sockets are exempt because they live in its own, never enrolled,
/// network namespace.
pub const EGRET_MARK: u32 = 0x539;

/// Version of the layout of every pinned map (keys, values, sizes). A new
/// agent reuses the pinned maps of the same version and creates fresh ones
/// (then swaps the programs over) when it changes: bump it with any change
/// to a type below that a map holds.
pub const MAPS_ABI: u32 = 3;

/// Address family IPv4 (`OrigDst::family`, `FlowKey::family`).
pub const AF_INET: u16 = 2;
/// Address family IPv6 (`OrigDst::family`, `FlowKey::family`).
pub const AF_INET6: u16 = 10;

/// Capture this netns's connects to mesh services.
pub const ENROLL_SERVICES: u32 = 1 << 0;
/// Capture this netns's DNS (UDP and TCP port 53).
pub const ENROLL_DNS: u32 = 1 << 1;
/// REGISTRY_ONLY: refuse connects and sends to anything outside the registry.
pub const ENROLL_REGISTRY_ONLY: u32 = 1 << 2;

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

/// A prefix of `REGISTRY_NETS`: networks an enrolled workload may reach
/// directly under REGISTRY_ONLY (loopback, the node's pod and service
/// networks). Same key layout as [`ServiceRange`].
pub type RegistryNet = ServiceRange;

/// Value of `REGISTRY_NETS`. Writer: agent (node settings). Readers:
/// connect4/6, sendmsg4/6, egress.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetValue {
    /// Reserved; 0 today.
    pub flags: u32,
}

/// Why the kernel refused something (the `reason` of `DENIALS` keys and
/// events).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// connect/sendmsg to an address outside the registry (REGISTRY_ONLY).
    NotInRegistry = 1,
    /// A DNS query sent anywhere but to egret's DNS proxy.
    DnsElsewhere = 2,
    /// A packet to an address outside the registry that no connect hook saw
    /// (a raw socket, or a connection opened before REGISTRY_ONLY was
    /// turned on).
    PacketNotInRegistry = 3,
    /// A socket egret could not keep track of (no memory for its state):
    /// refused rather than left unwatched.
    Untracked = 4,
}

impl Reason {
    /// Every reason, in value order.
    pub const ALL: [Reason; 4] = [
        Reason::NotInRegistry,
        Reason::DnsElsewhere,
        Reason::PacketNotInRegistry,
        Reason::Untracked,
    ];

    /// The reason with this value.
    pub const fn from_u16(v: u16) -> Option<Reason> {
        match v {
            1 => Some(Reason::NotInRegistry),
            2 => Some(Reason::DnsElsewhere),
            3 => Some(Reason::PacketNotInRegistry),
            4 => Some(Reason::Untracked),
            _ => None,
        }
    }

    /// A stable snake_case name for metrics, logs and `egret monitor`.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::NotInRegistry => "not_in_registry",
            Reason::DnsElsewhere => "dns_elsewhere",
            Reason::PacketNotInRegistry => "packet_not_in_registry",
            Reason::Untracked => "untracked_socket",
        }
    }
}

/// Key of `DENIALS`: one counter per enrolled namespace and reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DenialKey {
    pub netns_cookie: u64,
    /// `Reason as u16`.
    pub reason: u16,
    pub _pad: [u16; 3],
}

/// `Event::kind`: the kernel refused a connect, send or packet.
pub const EVENT_DENIED: u16 = 1;
/// `Event::kind`: a connect or DNS query was redirected to the agent (only
/// while `egret monitor --redirects` asks for them).
pub const EVENT_REDIRECT: u16 = 2;

/// `Event::hook`: which program saw it.
pub const HOOK_CONNECT: u8 = 1;
/// sendmsg4/6 (unconnected UDP).
pub const HOOK_SENDMSG: u8 = 2;
/// cgroup_skb egress (packets).
pub const HOOK_EGRESS: u8 = 3;
/// cgroup sock_create (socket creation).
pub const HOOK_SOCK_CREATE: u8 = 4;

/// `MONITOR` slot 0 bit: emit `EVENT_REDIRECT` events too.
pub const MONITOR_REDIRECTS: u32 = 1 << 0;

/// One kernel verdict for `egret monitor` and the access log, sent through
/// the `EVENTS` ring buffer. Writer: every program (rate-limited). Reader:
/// agent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub netns_cookie: u64,
    /// The destination (16-byte form; IPv4 mapped).
    pub addr: Addr16,
    /// Process id (tgid) of the sender, 0 when the program ran outside the
    /// process (packets sent from softirq).
    pub pid: u32,
    /// Host byte order.
    pub port: u16,
    /// `EVENT_DENIED` or `EVENT_REDIRECT`.
    pub kind: u16,
    /// Denials: `Reason as u16`; redirects: the port redirected to.
    pub reason: u16,
    /// `AF_INET` / `AF_INET6`.
    pub family: u16,
    /// IP protocol (6 TCP, 17 UDP, …), 0 when unknown.
    pub proto: u8,
    /// `HOOK_*`.
    pub hook: u8,
    pub _pad: [u8; 2],
    /// The sender's command name (`comm`), NUL-padded.
    pub comm: [u8; 16],
}

/// State of the per-CPU event rate limit (`EVENT_RATE` slot 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// `bpf_ktime_get_ns` when the current one-second window began.
    pub start_ns: u64,
    /// Events sent in the window.
    pub sent: u64,
}

/// Events each CPU may send per second; more are counted, not sent.
pub const EVENTS_PER_CPU_PER_SECOND: u64 = 500;

/// What egret keeps on each socket of an enrolled workload that it lets
/// out (`SOCK_STATE`, socket-local storage: it lives and dies with the
/// socket). Writers: connect4/6 and sendmsg4/6, sock_create (raw sockets).
/// Reader: egress. Kernel-only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockState {
    /// The enrolled namespace the socket belongs to.
    pub netns_cookie: u64,
}

/// `FEATURES` slot 0: `SERVICE_RANGES` holds at least one prefix (else the
/// programs skip the trie lookup).
pub const FEATURE_RANGES: u32 = 1 << 0;

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
    /// sock_ops moved an original destination to its flow key.
    FlowRecorded = 4,
    /// sock_ops found no pending original destination for a captured flow.
    FlowMissing = 5,
    /// A connect or send was refused: destination outside the registry.
    DeniedNotInRegistry = 6,
    /// A DNS query to a resolver other than egret was dropped.
    DeniedDnsElsewhere = 7,
    /// A packet to outside the registry was dropped (raw socket, or a
    /// connection older than REGISTRY_ONLY).
    DeniedPacket = 8,
    /// A socket was refused: egret could not keep its state.
    DeniedUntracked = 9,
    /// An event was not sent: rate limit or full ring buffer.
    EventsDropped = 10,
}

/// Number of `Stat` slots.
pub const STAT_COUNT: u32 = 11;

impl Stat {
    /// Every counter, in slot order.
    pub const ALL: [Stat; STAT_COUNT as usize] = [
        Stat::RedirectService,
        Stat::RedirectDns,
        Stat::DnsReplyRestored,
        Stat::PassthroughEnrolled,
        Stat::FlowRecorded,
        Stat::FlowMissing,
        Stat::DeniedNotInRegistry,
        Stat::DeniedDnsElsewhere,
        Stat::DeniedPacket,
        Stat::DeniedUntracked,
        Stat::EventsDropped,
    ];

    /// A stable snake_case name for metrics and status output.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::RedirectService => "redirect_service",
            Stat::RedirectDns => "redirect_dns",
            Stat::DnsReplyRestored => "dns_reply_restored",
            Stat::PassthroughEnrolled => "passthrough_enrolled",
            Stat::FlowRecorded => "flow_recorded",
            Stat::FlowMissing => "flow_missing",
            Stat::DeniedNotInRegistry => "denied_not_in_registry",
            Stat::DeniedDnsElsewhere => "denied_dns_elsewhere",
            Stat::DeniedPacket => "denied_packet",
            Stat::DeniedUntracked => "denied_untracked",
            Stat::EventsDropped => "events_dropped",
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
    unsafe impl aya::Pod for super::SockState {}
    unsafe impl aya::Pod for super::NetValue {}
    unsafe impl aya::Pod for super::DenialKey {}
    unsafe impl aya::Pod for super::Event {}
}

//! Every kernel map, declared once. Keys and values are the `#[repr(C)]`
//! types of `egret-common`; addresses are 16 bytes, ports host byte order.
//!
//! Every map is pinned by name in the agent instance's bpffs folder
//! (`<pin dir>/v<MAPS_ABI>/<NAME>`), so the programs keep enforcing while no
//! agent runs and a new agent takes the state over.

use aya_ebpf::{
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use egret_common::{
    Addr16, DenialKey, Enrollment, FlowKey, NetValue, OrigDst, RateWindow, ServiceKey,
    ServiceValue, STAT_COUNT,
};

use crate::sock_storage::SockStateMap;

/// Hash maps that fill as they go, not allocated up front.
const BPF_F_NO_PREALLOC: u32 = 1;

/// Enrolled network namespaces.
/// Key: netns cookie (`bpf_get_netns_cookie`). Value: `Enrollment` (`ENROLL_*` flags).
/// Writer: agent (`Kernel::enroll`/`unenroll`). Readers: every program.
#[map]
pub static ENROLLED: HashMap<u64, Enrollment> = HashMap::pinned(65536, 0);

/// Mesh service addresses whose TCP connects are captured, every port.
/// Key: `ServiceKey` (`port` 0: the whole address; the only form stored).
/// Value: `ServiceValue`.
/// Writer: agent (`Kernel::sync_services`, a diff of the config snapshot). Readers: connect4/6.
#[map]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(262144, 0);

/// Mesh service address ranges (ServiceEntry `spec.addresses` CIDRs) whose
/// TCP connects are captured, every port.
/// Key: LPM `Key<Addr16>` (`egret_common::ServiceRange`: prefix length in
/// bits of the 16-byte address, IPv4 as `::ffff:0:0/96` + its length).
/// Value: `ServiceValue`. Longest-prefix lookup (kernel ≥ 4.11, no prealloc).
/// Writer: agent (`Kernel::sync_service_ranges`, a diff of the config
/// snapshot). Readers: connect4/6, after an exact `SERVICES` miss.
#[map]
pub static SERVICE_RANGES: LpmTrie<Addr16, ServiceValue> = LpmTrie::pinned(16384, 0);


/// Networks an enrolled workload reaches directly under REGISTRY_ONLY:
/// loopback, unspecified, the node's pod and service networks.
/// Key: LPM `Key<Addr16>` (`egret_common::RegistryNet`). Value: `NetValue`.
/// Writer: agent (`Kernel::sync_registry_nets`, node settings). Readers:
/// connect4/6, sendmsg4/6, egress.
#[map]
pub static REGISTRY_NETS: LpmTrie<Addr16, NetValue> = LpmTrie::pinned(1024, 0);

/// egret's state on each socket of an enrolled workload that is let out
/// (`SockState`: its namespace), so the packet program knows whose packets
/// it sends. Socket-local storage: it goes with the socket, so no table
/// fills and nothing is left behind. Writers: connect4/6, sendmsg4/6 (sockets
/// let through), sock_create (raw sockets). Reader: egress.
#[btf_map]
pub static SOCK_STATE: SockStateMap = SockStateMap::new();

/// Original destination of a socket that was just redirected.
/// Key: socket cookie (`bpf_get_socket_cookie`). Value: `OrigDst`.
/// Writers: connect4/6, sendmsg4/6 (only when the socket's record changes).
/// Readers: sock_ops (moves TCP entries to
/// `ORIG_DST` and deletes them), recvmsg4/6 (restore a DNS reply's source).
/// LRU: UDP entries are never deleted explicitly and age out. (Measured
/// against socket-local storage: an LRU insert costs a redirect ~250 ns,
/// creating a socket's storage ~700 ns.)
#[map]
pub static PENDING: LruHashMap<u64, OrigDst> = LruHashMap::pinned(65536, 0);

/// Original destination of an established captured TCP flow.
/// Key: `FlowKey` (client netns cookie, client local port, family), what the
/// agent's listener inside that netns sees of its peer. Value: `OrigDst`.
/// Writer: sock_ops. Reader: agent (`Kernel::take_orig_dst`: one
/// lookup-and-delete per accepted connection).
#[map]
pub static ORIG_DST: LruHashMap<FlowKey, OrigDst> = LruHashMap::pinned(65536, 0);

/// Feature bits, slot 0 (`FEATURE_*`): what the programs may skip.
/// Writer: agent (config snapshot). Readers: connect4/6.
#[map]
pub static FEATURES: Array<u32> = Array::pinned(1, 0);

/// Denials per namespace and reason. Key: `DenialKey`. Value: count.
/// Writers: programs that deny. Reader: agent metrics (which folds entries
/// of released namespaces into its totals and deletes them).
#[map]
pub static DENIALS: HashMap<DenialKey, u64> = HashMap::pinned(65536, BPF_F_NO_PREALLOC);

/// Verdict events for `egret monitor` and the access log (`Event`).
/// Writers: every program (rate-limited by `EVENT_RATE`). Reader: agent.
#[map]
pub static EVENTS: RingBuf = RingBuf::pinned(256 * 1024, 0);

/// Monitor settings, slot 0: `MONITOR_*` bits. Writer: agent. Readers: programs.
#[map]
pub static MONITOR: Array<u32> = Array::pinned(1, 0);

/// Per-CPU event budget, slot 0. Writer and reader: programs (`events`).
#[map]
pub static EVENT_RATE: PerCpuArray<RateWindow> = PerCpuArray::pinned(1, 0);

/// Verdict counters, one slot per `egret_common::Stat`.
/// Key: `Stat as u32`. Value: per-CPU `u64` count.
/// Writer: every program (`stats::bump`). Reader: agent (`Kernel::stats`).
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::pinned(STAT_COUNT, 0);

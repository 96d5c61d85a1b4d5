//! Every kernel map, declared once. Keys and values are the `#[repr(C)]`
//! types of `egret-common`; addresses are 16 bytes, ports host byte order.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use egret_common::{Addr16, Enrollment, FlowKey, OrigDst, ServiceKey, ServiceValue, STAT_COUNT};

/// Enrolled network namespaces.
/// Key: netns cookie (`bpf_get_netns_cookie`). Value: `Enrollment` (`ENROLL_*` flags).
/// Writer: agent (`Kernel::enroll`/`unenroll`). Readers: connect4/6, sendmsg4/6, sock_ops.
#[map]
pub static ENROLLED: HashMap<u64, Enrollment> = HashMap::with_max_entries(65536, 0);

/// Mesh service addresses whose TCP connects are captured.
/// Key: `ServiceKey` (`port` 0 = every port of the address). Value: `ServiceValue`.
/// Writer: agent (`Kernel::sync_services`, a diff of the config snapshot). Readers: connect4/6.
#[map]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::with_max_entries(262144, 0);

/// Mesh service address ranges (ServiceEntry `spec.addresses` CIDRs) whose
/// TCP connects are captured, every port.
/// Key: LPM `Key<Addr16>` (`egret_common::ServiceRange`: prefix length in
/// bits of the 16-byte address, IPv4 as `::ffff:0:0/96` + its length).
/// Value: `ServiceValue`. Longest-prefix lookup (kernel ≥ 4.11, no prealloc).
/// Writer: agent (`Kernel::sync_service_ranges`, a diff of the config
/// snapshot). Readers: connect4/6, after an exact `SERVICES` miss.
#[map]
pub static SERVICE_RANGES: LpmTrie<Addr16, ServiceValue> = LpmTrie::with_max_entries(16384, 0);

/// Original destination of a socket that was just redirected.
/// Key: socket cookie (`bpf_get_socket_cookie`). Value: `OrigDst`.
/// Writers: connect4/6, sendmsg4/6. Readers: sock_ops (moves TCP entries to
/// `ORIG_DST` and deletes them), recvmsg4/6 (restore a DNS reply's source).
/// LRU: UDP entries are never deleted explicitly and age out.
#[map]
pub static PENDING: LruHashMap<u64, OrigDst> = LruHashMap::with_max_entries(65536, 0);

/// Original destination of an established captured TCP flow.
/// Key: `FlowKey` (client netns cookie, client local port, family), what the
/// agent's listener inside that netns sees of its peer. Value: `OrigDst`.
/// Writer: sock_ops. Reader: agent (`Kernel::take_orig_dst`, which deletes it).
#[map]
pub static ORIG_DST: LruHashMap<FlowKey, OrigDst> = LruHashMap::with_max_entries(65536, 0);

/// Verdict counters, one slot per `egret_common::Stat`.
/// Key: `Stat as u32`. Value: per-CPU `u64` count.
/// Writer: every program (`stats::bump`). Reader: agent (`Kernel::stats`).
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);

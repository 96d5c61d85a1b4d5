//! "In the registry" for destinations that are not captured: the networks
//! in `REGISTRY_NETS` (loopback, unspecified, the node's pod and service
//! networks). ServiceEntry addresses never get here: TCP to them is
//! redirected to the agent, and UDP to them has no proxy to go through.

use aya_ebpf::maps::lpm_trie::Key;
use egret_common::Addr16;

use crate::maps::REGISTRY_NETS;

/// Whether an enrolled workload may reach `addr` directly under REGISTRY_ONLY.
#[inline(always)]
pub fn reachable(addr: &Addr16) -> bool {
    // A lookup key carries the full address; the trie finds the longest
    // stored prefix of it.
    REGISTRY_NETS.get(Key::new(128, *addr)).is_some()
}

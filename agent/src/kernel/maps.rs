//! The agent's handles on the kernel maps it writes or reads, each behind
//! its own lock so callers on different maps never wait on each other —
//! except `ORIG_DST`, taken on every accepted connection with one atomic
//! bpf(2) call and no lock. (`PENDING` is kernel-only: the programs write
//! and consume it.)

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aya::maps::lpm_trie::{Key, LpmTrie};
use std::os::fd::AsFd;

use aya::maps::{Array, HashMap, IterableMap, MapData, MapError, PerCpuArray};
use aya::Ebpf;
use egret_common::{
    Addr16, DenialKey, Enrollment, FlowKey, NetValue, OrigDst, Reason, RegistryNet, ServiceKey,
    ServiceRange, ServiceValue, Stat, FEATURE_RANGES,
};

use super::error::KernelError;
use super::sync::diff;
use super::SyncReport;

const ENROLLED: &str = "ENROLLED";
const SERVICES: &str = "SERVICES";
const SERVICE_RANGES: &str = "SERVICE_RANGES";
const REGISTRY_NETS: &str = "REGISTRY_NETS";
const ORIG_DST: &str = "ORIG_DST";
const STATS: &str = "STATS";
const DENIALS: &str = "DENIALS";
const MONITOR: &str = "MONITOR";
const FEATURES: &str = "FEATURES";
/// Ring buffer of `egret_common::Event`s, taken by the event reader.
pub const EVENTS: &str = "EVENTS";

/// The maps the agent uses, taken out of the loaded object.
pub struct Maps {
    /// netns cookie -> Enrollment. Agent writes; connect/sendmsg/sock_ops read.
    enrolled: Mutex<HashMap<MapData, u64, Enrollment>>,
    /// ServiceKey -> ServiceValue. Agent writes (diff); connect4/6 read.
    services: Mutex<Mirrored<HashMap<MapData, ServiceKey, ServiceValue>, ServiceKey>>,
    /// LPM prefix -> ServiceValue. Agent writes (diff); connect4/6 read.
    service_ranges: Mutex<LpmTrie<MapData, Addr16, ServiceValue>>,
    /// FlowKey -> OrigDst (LRU hash). sock_ops writes; the agent takes
    /// (looks up and deletes in one call; the kernel serialises it).
    orig_dst: HashMap<MapData, FlowKey, OrigDst>,
    /// Stat -> per-CPU count. Programs write; the agent reads.
    stats: Mutex<PerCpuArray<MapData, u64>>,
    /// LPM prefix -> NetValue. Agent writes (node settings); every program reads.
    registry_nets: Mutex<LpmTrie<MapData, Addr16, NetValue>>,
    /// (netns, reason) -> count. Programs write; the agent reads and deletes
    /// entries of released namespaces.
    denials: Mutex<HashMap<MapData, DenialKey, u64>>,
    /// Slot 0: MONITOR_* bits. Agent writes; programs read.
    monitor: Mutex<Array<MapData, u32>>,
    /// Slot 0: FEATURE_* bits. Agent writes; connect4/6 read.
    features: Mutex<Array<MapData, u32>>,
}

/// A map the agent alone writes, with the keys it holds kept in memory:
/// a sync diffs against the mirror instead of walking the map (one
/// syscall per key, 20,000 of them at 10,000 ServiceEntries).
struct Mirrored<M, K> {
    map: M,
    keys: BTreeSet<K>,
}

/// Every map handle is an fd; a panic while holding one leaves nothing torn.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A delete or lookup of a key that is not there.
fn not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// The prefixes stored in `SERVICE_RANGES`.
fn range_keys(
    map: &LpmTrie<MapData, Addr16, ServiceValue>,
) -> Result<BTreeSet<ServiceRange>, KernelError> {
    map.keys()
        .map(|k| {
            k.map(|k| ServiceRange {
                prefix_len: k.prefix_len(),
                addr: k.data(),
            })
        })
        .collect::<Result<_, _>>()
        .map_err(KernelError::map(SERVICE_RANGES))
}

/// `SERVICES` with its mirror, read once from the map (empty when fresh).
fn mirrored_services(
    map: HashMap<MapData, ServiceKey, ServiceValue>,
) -> Result<Mirrored<HashMap<MapData, ServiceKey, ServiceValue>, ServiceKey>, KernelError> {
    let keys = map
        .keys()
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(KernelError::map(SERVICES))?;
    Ok(Mirrored { map, keys })
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, KernelError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(KernelError::Missing { kind: "map", name })?;
    T::try_from(map).map_err(KernelError::map(name))
}

impl Maps {
    /// Takes the agent's maps out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Maps, KernelError> {
        Ok(Maps {
            enrolled: Mutex::new(take(ebpf, ENROLLED)?),
            services: Mutex::new(mirrored_services(take(ebpf, SERVICES)?)?),
            service_ranges: Mutex::new(take(ebpf, SERVICE_RANGES)?),
            orig_dst: take(ebpf, ORIG_DST)?,
            stats: Mutex::new(take(ebpf, STATS)?),
            registry_nets: Mutex::new(take(ebpf, REGISTRY_NETS)?),
            denials: Mutex::new(take(ebpf, DENIALS)?),
            monitor: Mutex::new(take(ebpf, MONITOR)?),
            features: Mutex::new(take(ebpf, FEATURES)?),
        })
    }

    /// Makes `REGISTRY_NETS` equal `wanted`, changing only what differs.
    pub fn sync_registry_nets(
        &self,
        wanted: &BTreeSet<RegistryNet>,
    ) -> Result<SyncReport, KernelError> {
        let mut map = lock(&self.registry_nets);
        let current: BTreeSet<RegistryNet> = map
            .keys()
            .map(|k| {
                k.map(|k| RegistryNet {
                    prefix_len: k.prefix_len(),
                    addr: k.data(),
                })
            })
            .collect::<Result<_, _>>()
            .map_err(KernelError::map(REGISTRY_NETS))?;
        let change = diff(&current, wanted);
        let mut report = SyncReport::default();
        // Add first: a network never drops out while it is being replaced.
        for net in &change.add {
            map.insert(&Key::new(net.prefix_len, net.addr), NetValue::default(), 0)
                .map_err(KernelError::map(REGISTRY_NETS))?;
            report.added += 1;
        }
        for net in &change.remove {
            match map.remove(&Key::new(net.prefix_len, net.addr)) {
                Ok(()) => report.removed += 1,
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(KernelError::map(REGISTRY_NETS)(e)),
            }
        }
        Ok(report)
    }

    /// Every denial counter: (netns cookie, reason, count).
    pub fn denials(&self) -> Result<Vec<(u64, Reason, u64)>, KernelError> {
        let map = lock(&self.denials);
        let mut all = Vec::new();
        for entry in map.iter() {
            let (key, count) = entry.map_err(KernelError::map(DENIALS))?;
            if let Some(reason) = Reason::from_u16(key.reason) {
                all.push((key.netns_cookie, reason, count));
            }
        }
        all.sort_unstable_by_key(|(cookie, reason, _)| (*cookie, *reason));
        Ok(all)
    }

    /// Deletes what the kernel keeps about a released namespace (its denial
    /// counters), returning the counters it had.
    pub fn forget_netns(&self, netns_cookie: u64) -> Result<Vec<(Reason, u64)>, KernelError> {
        let mut denials = lock(&self.denials);
        let mut had = Vec::new();
        for reason in Reason::ALL {
            let key = DenialKey {
                netns_cookie,
                reason: reason as u16,
                _pad: [0; 3],
            };
            match denials.get(&key, 0) {
                Ok(count) => {
                    had.push((reason, count));
                    let _ = denials.remove(&key);
                }
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(KernelError::map(DENIALS)(e)),
            }
        }
        Ok(had)
    }

    /// Sets the `FEATURE_*` bits.
    fn set_features(&self, flags: u32) -> Result<(), KernelError> {
        lock(&self.features)
            .set(0, flags, 0)
            .map_err(KernelError::map(FEATURES))
    }

    /// Sets the `MONITOR_*` bits.
    pub fn set_monitor(&self, flags: u32) -> Result<(), KernelError> {
        lock(&self.monitor)
            .set(0, flags, 0)
            .map_err(KernelError::map(MONITOR))
    }

    /// Makes `SERVICES` equal `wanted`, changing only the differing keys.
    pub fn sync_services(&self, wanted: &BTreeSet<ServiceKey>) -> Result<SyncReport, KernelError> {
        let mut guard = lock(&self.services);
        let Mirrored { map, keys } = &mut *guard;
        let change = diff(keys, wanted);
        let mut report = SyncReport::default();
        // The mirror follows each write that succeeded, so after an error
        // it still says what the map holds.
        for key in &change.remove {
            match map.remove(key) {
                Ok(()) => report.removed += 1,
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(KernelError::map(SERVICES)(e)),
            }
            keys.remove(key);
        }
        for key in &change.add {
            map.insert(key, ServiceValue::default(), 0)
                .map_err(KernelError::map(SERVICES))?;
            keys.insert(*key);
            report.added += 1;
        }
        Ok(report)
    }

    /// Makes `SERVICE_RANGES` equal `wanted`, changing only the differing
    /// prefixes.
    pub fn sync_service_ranges(
        &self,
        wanted: &BTreeSet<ServiceRange>,
    ) -> Result<SyncReport, KernelError> {
        let mut map = lock(&self.service_ranges);
        let current = range_keys(&map)?;
        let change = diff(&current, wanted);
        let mut report = SyncReport::default();
        // connect4/6 skip the trie only while it is empty: the flag goes up
        // before the first prefix is in, and down after the last is out.
        if !wanted.is_empty() {
            self.set_features(FEATURE_RANGES)?;
        }
        for range in &change.remove {
            match map.remove(&Key::new(range.prefix_len, range.addr)) {
                Ok(()) => report.removed += 1,
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(KernelError::map(SERVICE_RANGES)(e)),
            }
        }
        for range in &change.add {
            map.insert(
                &Key::new(range.prefix_len, range.addr),
                ServiceValue::default(),
                0,
            )
            .map_err(KernelError::map(SERVICE_RANGES))?;
            report.added += 1;
        }
        if wanted.is_empty() {
            self.set_features(0)?;
        }
        Ok(report)
    }

    /// Every prefix in `SERVICE_RANGES`, sorted.
    pub fn service_ranges(&self) -> Result<Vec<ServiceRange>, KernelError> {
        let map = lock(&self.service_ranges);
        Ok(range_keys(&map)?.into_iter().collect())
    }

    /// Every key in `SERVICES`, sorted.
    pub fn services(&self) -> Result<Vec<ServiceKey>, KernelError> {
        let guard = lock(&self.services);
        // The map itself, not the mirror: this is what `egret status` checks.
        let keys = guard
            .map
            .keys()
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(KernelError::map(SERVICES))?;
        Ok(keys.into_iter().collect())
    }

    /// Adds or updates an enrolled netns.
    pub fn enroll(&self, netns_cookie: u64, flags: u32) -> Result<(), KernelError> {
        lock(&self.enrolled)
            .insert(netns_cookie, Enrollment { flags, _pad: 0 }, 0)
            .map_err(KernelError::map(ENROLLED))
    }

    /// Removes an enrolled netns; removing one that is not there is fine.
    pub fn unenroll(&self, netns_cookie: u64) -> Result<(), KernelError> {
        match lock(&self.enrolled).remove(&netns_cookie) {
            Err(e) if !not_found(&e) => Err(KernelError::map(ENROLLED)(e)),
            _ => Ok(()),
        }
    }

    /// Every enrolled netns cookie with its flags, sorted by cookie.
    pub fn enrolled(&self) -> Result<Vec<(u64, u32)>, KernelError> {
        let map = lock(&self.enrolled);
        let mut all = map
            .iter()
            .map(|r| r.map(|(cookie, e)| (cookie, e.flags)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(KernelError::map(ENROLLED))?;
        all.sort_unstable();
        Ok(all)
    }

    /// Takes (looks up and deletes) one flow's original destination.
    pub fn take_orig_dst(&self, key: &FlowKey) -> Result<Option<OrigDst>, KernelError> {
        egret_common::take_orig_dst(self.orig_dst.map().fd().as_fd(), key).map_err(|source| {
            KernelError::Io {
                what: format!("taking a record out of eBPF map {ORIG_DST}"),
                source,
            }
        })
    }

    /// Every counter summed over CPUs.
    pub fn stats(&self) -> Result<Vec<(Stat, u64)>, KernelError> {
        let map = lock(&self.stats);
        Stat::ALL
            .iter()
            .map(|&stat| {
                let per_cpu = map
                    .get(&(stat as u32), 0)
                    .map_err(KernelError::map(STATS))?;
                Ok((stat, per_cpu.iter().sum()))
            })
            .collect()
    }
}

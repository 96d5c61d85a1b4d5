//! The eBPF side: loading egret's kernel programs and keeping their maps.
//!
//! The programs (crate `ebpf/egret-ebpf`) attach once at the cgroup v2 root
//! and act only for network namespaces the agent enrolls. Programs, links
//! and maps are pinned in the instance's bpffs folder ([`pins`]): they go on
//! enforcing when the agent stops or crashes, and the next agent takes them
//! over, swapping its programs in atomically. [`Kernel`] is the one handle
//! on them: enrollment, the `SERVICES`/`SERVICE_RANGES`/`REGISTRY_NETS`
//! diffs, original destinations of captured flows, verdict counters and
//! events, and the programs' log lines.

mod bpf_sys;
mod cgroup;
mod error;
pub mod events;
pub mod keys;
mod loader;
mod maps;
mod netns;
pub mod pins;
pub mod registry;
mod sync;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use aya::maps::{MapData, RingBuf};
use aya::Ebpf;
use aya_log::EbpfLogger;
use egret_common::{FlowKey, OrigDst, Reason, RegistryNet, ServiceKey, ServiceRange, Stat};
use ipnet::IpNet;

pub use cgroup::cgroup2_root;
pub use error::KernelError;
pub use loader::{Placement, PROGRAMS};
pub use netns::netns_cookie_of;
pub use pins::PinDir;

/// What a `sync_*` changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Keys inserted.
    pub added: usize,
    /// Stale keys deleted.
    pub removed: usize,
}

/// The loaded kernel programs and the agent's handles on their maps.
/// Dropping it detaches nothing: the pinned links keep the programs in force.
pub struct Kernel {
    maps: maps::Maps,
    pins: PinDir,
    events: Mutex<Option<RingBuf<MapData>>>,
    logger: Mutex<Option<EbpfLogger<&'static dyn log::Log>>>,
    log_fd: Option<RawFd>,
    /// Owns the loaded programs until they are put in force.
    ebpf: Mutex<Ebpf>,
}

impl Kernel {
    /// Loads the programs (embedded object, or `object` when Some) with their
    /// maps pinned in `pins` (reusing the maps an earlier agent of this
    /// instance left, when their layout is the same). Nothing is attached
    /// until [`Kernel::put_in_force`]: fill the maps first.
    pub fn load(object: Option<&Path>, pins: PinDir) -> Result<Kernel, KernelError> {
        let mut ebpf = loader::load(object, &pins)?;
        let maps = maps::Maps::take(&mut ebpf)?;
        let events = ebpf
            .take_map(maps::EVENTS)
            .ok_or(KernelError::Missing {
                kind: "map",
                name: maps::EVENTS,
            })
            .and_then(|m| RingBuf::try_from(m).map_err(KernelError::map(maps::EVENTS)))?;
        // Without the log ring the programs still work; only their debug
        // lines are lost, so this is a warning, not a failure.
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(logger),
            Err(e) => {
                tracing::debug!(error = %e, "eBPF log lines will not be shown");
                None
            }
        };
        Ok(Kernel {
            maps,
            pins,
            events: Mutex::new(Some(events)),
            log_fd: logger.as_ref().map(AsRawFd::as_raw_fd),
            logger: Mutex::new(logger),
            ebpf: Mutex::new(ebpf),
        })
    }

    /// Attaches the programs at the cgroup v2 root, or swaps them in place
    /// of the ones an earlier agent left running (atomically, per program),
    /// then drops map folders of other layouts.
    pub fn put_in_force(&self) -> Result<Vec<(&'static str, Placement)>, KernelError> {
        let mut ebpf = self.ebpf.lock().unwrap_or_else(PoisonError::into_inner);
        let placed = loader::put_in_force(&mut ebpf, &self.pins)?;
        for dir in self.pins.stale_map_dirs() {
            if let Err(e) = pins::remove_tree(&dir) {
                tracing::warn!(error = %e, "could not remove maps of an older layout");
            }
        }
        Ok(placed)
    }

    /// Whether an earlier agent of the instance at `pins` left programs in force.
    pub fn left_in_force(pins: &PinDir) -> bool {
        pins.has_links()
    }

    /// Removes every pinned object of the instance at `pins`: the programs
    /// detach and the maps go. Enrolled workloads are no longer captured.
    pub fn remove_pinned(pins: &PinDir) -> Result<(), KernelError> {
        pins.remove_all()
    }

    /// The instance's bpffs folder.
    pub fn pins(&self) -> &PinDir {
        &self.pins
    }

    /// Makes SERVICES capture exactly `vips` (every port) by a diff:
    /// inserts only missing keys, deletes only stale ones.
    pub fn sync_services(
        &self,
        vips: impl IntoIterator<Item = IpAddr>,
    ) -> Result<SyncReport, KernelError> {
        self.maps.sync_services(&keys::service_keys(vips))
    }

    /// Makes SERVICE_RANGES hold exactly the ServiceEntry address CIDRs `nets` by a diff.
    pub fn sync_service_ranges(
        &self,
        nets: impl IntoIterator<Item = IpNet>,
    ) -> Result<SyncReport, KernelError> {
        self.maps.sync_service_ranges(&keys::service_ranges(nets))
    }

    /// Makes REGISTRY_NETS (what REGISTRY_ONLY workloads reach directly) equal `wanted`.
    pub fn sync_registry_nets(
        &self,
        wanted: &BTreeSet<RegistryNet>,
    ) -> Result<SyncReport, KernelError> {
        self.maps.sync_registry_nets(wanted)
    }

    /// Every prefix in SERVICE_RANGES, sorted.
    pub fn service_ranges(&self) -> Result<Vec<ServiceRange>, KernelError> {
        self.maps.service_ranges()
    }

    /// Every key in SERVICES, sorted.
    pub fn services(&self) -> Result<Vec<ServiceKey>, KernelError> {
        self.maps.services()
    }

    /// Enrolls the netns with `netns_cookie` with `ENROLL_*` `flags` (replacing earlier flags).
    pub fn enroll(&self, netns_cookie: u64, flags: u32) -> Result<(), KernelError> {
        self.maps.enroll(netns_cookie, flags)
    }

    /// Stops capturing for the netns with `netns_cookie` (no error if it was
    /// not enrolled) and returns the denial counters the kernel had for it.
    pub fn unenroll(&self, netns_cookie: u64) -> Result<Vec<(Reason, u64)>, KernelError> {
        self.maps.unenroll(netns_cookie)?;
        self.maps.forget_netns(netns_cookie)
    }

    /// Every enrolled netns cookie and its flags, sorted by cookie.
    pub fn enrolled(&self) -> Result<Vec<(u64, u32)>, KernelError> {
        self.maps.enrolled()
    }

    /// Looks up and deletes the original destination of an accepted captured flow.
    pub fn take_orig_dst(&self, key: &FlowKey) -> Result<Option<OrigDst>, KernelError> {
        self.maps.take_orig_dst(key)
    }

    /// Sum over CPUs of every STATS counter.
    pub fn stats(&self) -> Result<Vec<(Stat, u64)>, KernelError> {
        self.maps.stats()
    }

    /// Denial counters per enrolled namespace: (netns cookie, reason, count).
    pub fn denials(&self) -> Result<Vec<(u64, Reason, u64)>, KernelError> {
        self.maps.denials()
    }

    /// Turns redirect events on or off (denials are always sent).
    pub fn set_monitor_redirects(&self, on: bool) -> Result<(), KernelError> {
        self.maps.set_monitor(if on {
            egret_common::MONITOR_REDIRECTS
        } else {
            0
        })
    }

    /// The events ring buffer, for the one reader (`events::read_events`).
    pub fn take_events(&self) -> Option<RingBuf<MapData>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Drains pending aya-log records into the `log` facade (call when the logger fd is readable or periodically).
    pub fn flush_logs(&self) {
        let mut logger = self.logger.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(logger) = logger.as_mut() {
            logger.flush();
        }
    }

    /// Raw fd of the aya-log ring, if logging is set up (for AsyncFd).
    pub fn log_fd(&self) -> Option<RawFd> {
        self.log_fd
    }
}

/// Callers share one `Kernel` across threads (`Arc<Kernel>`).
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Kernel>();
};

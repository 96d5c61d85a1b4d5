//! The eBPF side: loading egret's kernel programs and keeping their maps.
//!
//! The programs (crate `ebpf/egret-ebpf`) attach once at the cgroup v2 root
//! and act only for network namespaces the agent enrolls. [`Kernel`] is the
//! one handle on them: enrollment, the `SERVICES` and `SERVICE_RANGES` diffs
//! from the config snapshot, original destinations of captured flows,
//! verdict counters and the programs' log lines.

mod cgroup;
mod error;
mod loader;
mod maps;
mod netns;
mod sync;

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use aya::Ebpf;
use aya_log::EbpfLogger;
use egret_common::{FlowKey, OrigDst, ServiceKey, ServiceRange, Stat};

pub use cgroup::cgroup2_root;
pub use error::KernelError;
pub use netns::netns_cookie_of;

/// What a `sync_services` changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Keys inserted.
    pub added: usize,
    /// Stale keys deleted.
    pub removed: usize,
}

/// The loaded, attached kernel programs and the agent's handles on their
/// maps. Dropping it detaches the programs.
pub struct Kernel {
    maps: maps::Maps,
    logger: Mutex<Option<EbpfLogger<&'static dyn log::Log>>>,
    log_fd: Option<RawFd>,
    /// Owns the programs and their cgroup links; kept for its Drop.
    _ebpf: Mutex<Ebpf>,
}

impl Kernel {
    /// Loads the programs (embedded object, or `object` when Some) and attaches them at the cgroup v2 root with CgroupAttachMode::AllowMultiple (several agents/tests may run at once; each has its own maps). Also starts nothing async; returns the EbpfLogger-ready handle.
    pub fn load(object: Option<&Path>) -> Result<Kernel, KernelError> {
        let mut ebpf = loader::load_and_attach(object)?;
        let maps = maps::Maps::take(&mut ebpf)?;
        // Without the log ring the programs still work; only their debug
        // lines are lost, so this is a warning, not a failure.
        let logger = match EbpfLogger::init(&mut ebpf) {
            Ok(logger) => Some(logger),
            Err(e) => {
                tracing::warn!(error = %e, "eBPF log lines will not be shown");
                None
            }
        };
        Ok(Kernel {
            maps,
            log_fd: logger.as_ref().map(AsRawFd::as_raw_fd),
            logger: Mutex::new(logger),
            _ebpf: Mutex::new(ebpf),
        })
    }

    /// Makes SERVICES equal `wanted` by a diff: inserts only missing keys, deletes only stale ones.
    pub fn sync_services(&self, wanted: &BTreeSet<ServiceKey>) -> Result<SyncReport, KernelError> {
        self.maps.sync_services(wanted)
    }

    /// Makes SERVICE_RANGES (ServiceEntry address CIDRs) equal `wanted` by a diff.
    pub fn sync_service_ranges(
        &self,
        wanted: &BTreeSet<ServiceRange>,
    ) -> Result<SyncReport, KernelError> {
        self.maps.sync_service_ranges(wanted)
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

    /// Stops capturing for the netns with `netns_cookie` (no error if it was not enrolled).
    pub fn unenroll(&self, netns_cookie: u64) -> Result<(), KernelError> {
        self.maps.unenroll(netns_cookie)
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

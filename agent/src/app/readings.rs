//! The real [`Readings`]: the node agent's kernel, DNS proxy, workloads and
//! snapshot, or the standalone waypoint's snapshot alone.

use std::sync::Arc;

use tokio::sync::watch;

use crate::authz::AuthzCounts;
use crate::config::snapshot::Snapshot;
use crate::dns::DnsProxy;
use crate::kernel::Kernel;
use crate::metrics::Readings;
use crate::proxy::authorize::Authorizer;
use crate::workload::WorkloadManager;

/// What the node agent reports about itself.
pub struct AgentReadings {
    pub authorizer: Arc<Authorizer>,
    pub kernel: Arc<Kernel>,
    pub dns: Arc<DnsProxy>,
    pub workloads: Arc<WorkloadManager>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

impl Readings for AgentReadings {
    fn kernel_verdicts(&self) -> Option<Vec<(&'static str, u64)>> {
        match self.kernel.stats() {
            Ok(stats) => Some(stats.into_iter().map(|(s, n)| (s.name(), n)).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "reading kernel verdict counters");
                None
            }
        }
    }

    fn dns_queries(&self) -> Option<[(&'static str, u64); 4]> {
        Some(dns_queries(&self.dns))
    }

    fn config_generation(&self) -> u64 {
        self.snapshots.borrow().generation
    }

    fn workloads_enrolled(&self) -> Option<u64> {
        let enrolled = self.workloads.list().iter().filter(|w| w.enrolled).count();
        Some(enrolled as u64)
    }

    fn authz(&self) -> AuthzCounts {
        self.authorizer.counts()
    }

    fn kernel_denials(&self) -> Option<Vec<(String, &'static str, u64)>> {
        Some(
            self.workloads
                .denials_by_namespace()
                .into_iter()
                .map(|((namespace, reason), n)| (namespace, reason.name(), n))
                .collect(),
        )
    }
}

/// The DNS proxy's counters by outcome word.
pub fn dns_queries(dns: &DnsProxy) -> [(&'static str, u64); 4] {
    let s = dns.stats();
    [
        ("local", s.answered_local()),
        ("forwarded", s.forwarded()),
        ("failed", s.failed()),
        ("malformed", s.malformed()),
    ]
}

/// What the standalone waypoint reports about itself.
pub struct WaypointReadings {
    pub authorizer: Arc<Authorizer>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
}

impl Readings for WaypointReadings {
    fn kernel_verdicts(&self) -> Option<Vec<(&'static str, u64)>> {
        None
    }

    fn dns_queries(&self) -> Option<[(&'static str, u64); 4]> {
        None
    }

    fn config_generation(&self) -> u64 {
        self.snapshots.borrow().generation
    }

    fn workloads_enrolled(&self) -> Option<u64> {
        None
    }

    fn authz(&self) -> AuthzCounts {
        self.authorizer.counts()
    }
}

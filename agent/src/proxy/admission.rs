//! Caps on the downstream connections the waypoint holds: per workload and
//! in total. A connection over a cap is closed at once, logged with flag
//! `OM` (Envoy's overload-manager flag) and counted in
//! `egret_downstream_connections_rejected_total{limit}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::flags::ResponseFlag;
use super::limits::Limits;
use super::outcome::Flagged;
use crate::identity::WorkloadInfo;

/// Which cap refused a connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The workload holds its most connections.
    #[error(
        "workload {workload} already holds {limit} connections through the waypoint \
         (--max-connections-per-workload)"
    )]
    Workload {
        /// `namespace/name`.
        workload: String,
        /// The cap.
        limit: usize,
    },
    /// The agent holds its most connections.
    #[error("the waypoint already holds {limit} connections (--max-connections)")]
    Total {
        /// The cap.
        limit: usize,
    },
}

impl Refusal {
    /// The metric label of the cap.
    pub fn limit(&self) -> &'static str {
        match self {
            Refusal::Workload { .. } => "workload",
            Refusal::Total { .. } => "total",
        }
    }
}

impl Flagged for Refusal {
    fn flag(&self) -> Option<ResponseFlag> {
        Some(ResponseFlag::OverloadManager)
    }
}

/// A workload, as connections are counted.
type Key = (String, String, String);

#[derive(Debug, Default)]
struct Counts {
    by_workload: HashMap<Key, usize>,
    total: usize,
}

/// Counts open downstream connections against the caps.
#[derive(Debug)]
pub struct Admission {
    per_workload: usize,
    total: usize,
    counts: Mutex<Counts>,
}

impl Admission {
    /// Counters for the caps of `limits`.
    pub fn new(limits: &Limits) -> Self {
        Admission {
            per_workload: limits.max_connections_per_workload,
            total: limits.max_connections,
            counts: Mutex::default(),
        }
    }

    /// Counts one more connection of `workload`, or says which cap it is over.
    pub fn admit(self: &Arc<Self>, workload: &WorkloadInfo) -> Result<Permit, Refusal> {
        let key = (
            workload.namespace.clone(),
            workload.name.clone(),
            workload.service_account.clone(),
        );
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.total {
            return Err(Refusal::Total { limit: self.total });
        }
        let held = counts.by_workload.entry(key.clone()).or_default();
        if *held >= self.per_workload {
            return Err(Refusal::Workload {
                workload: format!("{}/{}", key.0, key.1),
                limit: self.per_workload,
            });
        }
        *held += 1;
        counts.total += 1;
        Ok(Permit {
            admission: self.clone(),
            key,
        })
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(&Limits::default())
    }
}

/// One counted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    key: Key,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(held) = counts.by_workload.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                counts.by_workload.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str) -> WorkloadInfo {
        WorkloadInfo {
            name: name.into(),
            namespace: "ns".into(),
            service_account: "sa".into(),
            ip: "10.0.0.1".parse().unwrap(),
            netns_cookie: 1,
        }
    }

    #[test]
    fn caps_per_workload_and_in_total() {
        let admission = Arc::new(Admission::new(&Limits {
            max_connections_per_workload: 2,
            max_connections: 3,
            ..Limits::default()
        }));
        let (a, b) = (workload("a"), workload("b"));
        let a1 = admission.admit(&a).unwrap();
        let _a2 = admission.admit(&a).unwrap();
        let refused = admission.admit(&a).unwrap_err();
        assert_eq!(refused.limit(), "workload");
        assert!(refused.to_string().contains("ns/a"), "{refused}");
        let _b1 = admission.admit(&b).unwrap();
        assert_eq!(admission.admit(&b).unwrap_err().limit(), "total");
        assert_eq!(admission.open(), 3);
        drop(a1);
        assert_eq!(admission.open(), 2);
        let _a3 = admission.admit(&a).unwrap();
    }
}

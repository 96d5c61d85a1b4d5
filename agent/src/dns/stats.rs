//! Counters of what the DNS proxy did with each query, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// How queries were handled since the proxy started. Lock-free so every
/// query can count without contention.
#[derive(Debug, Default)]
pub struct DnsStats {
    answered_local: AtomicU64,
    forwarded: AtomicU64,
    failed: AtomicU64,
    malformed: AtomicU64,
}

impl DnsStats {
    /// Queries for mesh hosts answered from the snapshot.
    pub fn answered_local(&self) -> u64 {
        self.answered_local.load(Ordering::Relaxed)
    }

    /// Queries relayed to an upstream that answered.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Queries answered SERVFAIL because no upstream answered.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Queries answered FORMERR/NOTIMP or dropped as unparseable.
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, outcome: QueryOutcome) {
        let counter = match outcome {
            QueryOutcome::Local => &self.answered_local,
            QueryOutcome::Forwarded => &self.forwarded,
            QueryOutcome::Failed => &self.failed,
            QueryOutcome::Malformed => &self.malformed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What happened to one query; the word used in logs and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueryOutcome {
    Local,
    Forwarded,
    Failed,
    Malformed,
}

impl QueryOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            QueryOutcome::Local => "local",
            QueryOutcome::Forwarded => "forwarded",
            QueryOutcome::Failed => "failed",
            QueryOutcome::Malformed => "malformed",
        }
    }
}

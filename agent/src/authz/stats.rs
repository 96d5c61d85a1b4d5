//! Authorization decision counters for the metrics exporter: one per reason, plus audit and
//! dry-run outcomes. Lock-free; shared across config generations.

use std::sync::atomic::{AtomicU64, Ordering};

use super::set::{DecisionReason, PolicyDecision};

/// Running totals of authorization decisions.
#[derive(Debug, Default)]
pub struct AuthzStats {
    denied_by_policy: AtomicU64,
    allowed_by_policy: AtomicU64,
    no_allow_matched: AtomicU64,
    no_policies: AtomicU64,
    audited: AtomicU64,
    dry_run_would_deny: AtomicU64,
    dry_run_would_allow: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthzCounts {
    /// Denied by a matching DENY policy.
    pub denied_by_policy: u64,
    /// Allowed by a matching ALLOW policy.
    pub allowed_by_policy: u64,
    /// Denied because ALLOW policies applied and none matched.
    pub no_allow_matched: u64,
    /// Allowed because no policy decided.
    pub no_policies: u64,
    /// AUDIT policy matches (one per matching policy).
    pub audited: u64,
    /// Dry-run policies that would have denied.
    pub dry_run_would_deny: u64,
    /// Dry-run policies that would have allowed.
    pub dry_run_would_allow: u64,
}

impl AuthzStats {
    /// Counts one decision.
    pub fn record(&self, d: &PolicyDecision) {
        let counter = match d.reason {
            DecisionReason::DeniedBy => &self.denied_by_policy,
            DecisionReason::AllowedBy => &self.allowed_by_policy,
            DecisionReason::NoAllowMatched => &self.no_allow_matched,
            DecisionReason::NoPolicies => &self.no_policies,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.audited
            .fetch_add(d.audit.len() as u64, Ordering::Relaxed);
        for (_, would_allow) in &d.dry_run {
            let c = if *would_allow {
                &self.dry_run_would_allow
            } else {
                &self.dry_run_would_deny
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current totals.
    pub fn snapshot(&self) -> AuthzCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AuthzCounts {
            denied_by_policy: get(&self.denied_by_policy),
            allowed_by_policy: get(&self.allowed_by_policy),
            no_allow_matched: get(&self.no_allow_matched),
            no_policies: get(&self.no_policies),
            audited: get(&self.audited),
            dry_run_would_deny: get(&self.dry_run_would_deny),
            dry_run_would_allow: get(&self.dry_run_would_allow),
        }
    }
}

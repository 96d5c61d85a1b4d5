//! Workload identity: who a captured connection comes from.

use std::fmt;
use std::net::IpAddr;

/// A SPIFFE identity `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// A workload enrolled on this node (a pod, or a process run by `egret exec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// Pod name (for `egret exec`: `<command>-<id>`).
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    /// The workload's own address (its side of the veth).
    pub ip: IpAddr,
    /// `bpf_get_netns_cookie` of the workload's network namespace.
    pub netns_cookie: u64,
}

impl WorkloadInfo {
    /// The workload's SPIFFE identity in `trust_domain`.
    pub fn identity(&self, trust_domain: &str) -> Identity {
        Identity {
            trust_domain: trust_domain.to_string(),
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
        }
    }
}

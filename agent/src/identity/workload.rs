//! Who a connection comes from: a workload enrolled on this node (a pod,
//! or a process run by `egret exec`), or the workload an HBONE peer names.

use std::net::IpAddr;

use super::Identity;

/// A workload, as the proxy and the access log know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// Pod name (for `egret exec`: `<command>-<id>`).
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    /// The workload's own address (its side of the veth).
    pub ip: IpAddr,
    /// `bpf_get_netns_cookie` of the workload's network namespace (0 for a
    /// workload behind an HBONE peer).
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

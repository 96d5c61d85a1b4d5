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

/// The workload address a captured connection comes from: of the family
/// the workload connected with (the listener's peer is loopback of that
/// family), so a dual-stack pod's IPv6 connections carry its IPv6 address.
pub fn source_ip(primary: IpAddr, others: &[IpAddr], peer: IpAddr) -> IpAddr {
    if primary.is_ipv4() == peer.is_ipv4() {
        return primary;
    }
    others
        .iter()
        .copied()
        .find(|ip| ip.is_ipv4() == peer.is_ipv4())
        .unwrap_or(primary)
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

#[cfg(test)]
mod tests {
    use super::source_ip;

    #[test]
    fn dual_stack_pods_connect_from_the_address_of_the_family_used() {
        let v4: std::net::IpAddr = "10.244.0.9".parse().unwrap();
        let v6: std::net::IpAddr = "fd00:10:244::9".parse().unwrap();
        let lo4 = "127.0.0.1".parse().unwrap();
        let lo6 = "::1".parse().unwrap();
        assert_eq!(source_ip(v4, &[v6], lo4), v4);
        assert_eq!(source_ip(v4, &[v6], lo6), v6);
        assert_eq!(source_ip(v6, &[v4], lo4), v4);
        // Single-stack: the one address, whatever the family.
        assert_eq!(source_ip(v4, &[], lo6), v4);
    }
}

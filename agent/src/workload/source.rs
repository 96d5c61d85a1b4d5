//! The source address of a captured connection.

use std::net::IpAddr;

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

//! The config's addresses in the kernel maps' key forms: 16-byte addresses
//! (IPv4 mapped into IPv6), longest-prefix-match prefixes, `SERVICES` keys.
//! The config snapshot speaks `IpAddr`/`IpNet`; only the kernel knows these.

use std::collections::BTreeSet;
use std::net::IpAddr;

use egret_common::{v4_mapped, RegistryNet, ServiceKey, ServiceRange};
use ipnet::IpNet;

/// The 16-byte form the kernel maps use (IPv4 mapped into IPv6).
pub fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => v4_mapped(a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// A network as the kernel's LPM tries key it: 16-byte address, IPv4
/// mapped (`::ffff:0:0/96` + its length), bits past the prefix zero.
pub fn lpm_prefix(net: IpNet) -> RegistryNet {
    let net = net.trunc();
    let mapped = if net.addr().is_ipv4() { 96 } else { 0 };
    RegistryNet {
        prefix_len: u32::from(net.prefix_len()) + mapped,
        addr: addr16(net.addr()),
    }
}

/// The `SERVICES` keys for `vips`: each captured on every port (port 0).
pub fn service_keys(vips: impl IntoIterator<Item = IpAddr>) -> BTreeSet<ServiceKey> {
    vips.into_iter()
        .map(|ip| ServiceKey {
            addr: addr16(ip),
            port: 0,
            _pad: 0,
        })
        .collect()
}

/// The `SERVICE_RANGES` prefixes for ServiceEntry address CIDRs.
pub fn service_ranges(nets: impl IntoIterator<Item = IpNet>) -> BTreeSet<ServiceRange> {
    nets.into_iter().map(lpm_prefix).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_become_whole_address_keys_ipv4_mapped() {
        let keys = service_keys([
            "240.240.0.2".parse().unwrap(),
            "2001:db8::7".parse().unwrap(),
            "240.240.0.2".parse().unwrap(),
        ]);
        let v6: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
        assert_eq!(
            keys,
            BTreeSet::from([
                ServiceKey {
                    addr: v4_mapped([240, 240, 0, 2]),
                    port: 0,
                    _pad: 0
                },
                ServiceKey {
                    addr: v6.octets(),
                    port: 0,
                    _pad: 0
                },
            ])
        );
    }

    #[test]
    fn ranges_become_lpm_prefixes_ipv4_under_the_mapped_96() {
        let ranges = service_ranges([
            "10.9.0.0/16".parse().unwrap(),
            // Host bits past the prefix are cleared, as the trie wants.
            "fd00::5/64".parse().unwrap(),
        ]);
        let v6: std::net::Ipv6Addr = "fd00::".parse().unwrap();
        assert_eq!(
            ranges,
            BTreeSet::from([
                ServiceRange {
                    prefix_len: 96 + 16,
                    addr: v4_mapped([10, 9, 0, 0]),
                },
                ServiceRange {
                    prefix_len: 64,
                    addr: v6.octets(),
                },
            ])
        );
    }
}

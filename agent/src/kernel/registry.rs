//! What a REGISTRY_ONLY workload reaches directly (the `REGISTRY_NETS`
//! map): loopback and the unspecified address (its own namespace, and the
//! agent's listeners in it), and the node's pod and service networks.
//! ServiceEntry addresses are not here: connects to them are captured.

use std::collections::BTreeSet;
use std::net::IpAddr;

use egret_common::RegistryNet;
use ipnet::IpNet;

use super::keys::{addr16, lpm_prefix};

/// Networks always reachable: `127.0.0.0/8`, `::1`, `0.0.0.0`, `::`.
pub const ALWAYS: [&str; 4] = ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"];

/// The `REGISTRY_NETS` prefixes for `mesh_networks` plus [`ALWAYS`].
pub fn registry_nets(mesh_networks: &[IpNet]) -> BTreeSet<RegistryNet> {
    ALWAYS
        .iter()
        .map(|n| n.parse::<IpNet>().expect("valid constant"))
        .chain(mesh_networks.iter().copied())
        .map(lpm_prefix)
        .collect()
}

/// Whether `ip` is in `nets` (what the kernel's longest-prefix lookup
/// answers), for tests and `egret status`.
pub fn contains(nets: &BTreeSet<RegistryNet>, ip: IpAddr) -> bool {
    let key = addr16(ip);
    nets.iter().any(|n| {
        let bits = n.prefix_len as usize;
        (0..bits).all(|i| {
            let (byte, bit) = (i / 8, 7 - (i % 8));
            (key[byte] >> bit) & 1 == (n.addr[byte] >> bit) & 1
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_mesh_networks_only() {
        let nets = registry_nets(&[
            "10.238.0.0/16".parse().unwrap(),
            "fd00::/64".parse().unwrap(),
        ]);
        let yes = [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "0.0.0.0",
            "::",
            "10.238.4.5",
            "::ffff:10.238.0.9",
            "fd00::5",
        ];
        let no = [
            "192.0.2.10",
            "240.240.0.2",
            "10.239.0.1",
            "::2",
            "fd00:0:0:1::1",
            "2001:2::2",
            "8.8.8.8",
        ];
        for ip in yes {
            assert!(contains(&nets, ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!contains(&nets, ip.parse().unwrap()), "{ip}");
        }
    }
}

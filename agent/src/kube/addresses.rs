//! ServiceEntry addresses in a cluster: the elected status writer hands
//! them out and publishes them in `status.addresses` (as istiod does);
//! every agent takes them from there, so all nodes agree and a restart
//! changes nothing.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::config::allocate::{Addresses, AllocKey};

const V4_BASE: u32 = u32::from_be_bytes([240, 240, 0, 0]);
const V6_BASE: u128 = 0x2001_0002_0000_0000_0000_0000_0000_0000;
/// First offset handed out (`.0` and `.1` stay reserved, as in Istio).
const FIRST: u32 = 2;
/// Last offset: 240.240.255.254.
const LAST: u32 = 0xfffe;

/// The addresses in force for `wanted`: published ones first; then, only
/// when this agent writes status, the ones it proposed before (published
/// soon) and fresh pairs for the rest. Other agents leave a host without an
/// address until the writer has published one.
pub fn assign(
    wanted: &HashSet<AllocKey>,
    published: &HashMap<AllocKey, Addresses>,
    proposed: &HashMap<AllocKey, Addresses>,
    writer: bool,
) -> HashMap<AllocKey, Addresses> {
    let mut out = HashMap::new();
    let mut used_v4: HashSet<Ipv4Addr> = published.values().map(|a| a.ipv4).collect();
    let mut used_v6: HashSet<Ipv6Addr> = published.values().map(|a| a.ipv6).collect();
    let mut missing = Vec::new();
    for key in wanted {
        match published.get(key) {
            Some(a) => {
                out.insert(key.clone(), *a);
            }
            None => missing.push(key),
        }
    }
    if !writer {
        return out;
    }
    // Key order, so the result does not depend on hash order.
    missing.sort();
    let mut fresh = Vec::new();
    for key in missing {
        match proposed.get(key) {
            Some(a) if !used_v4.contains(&a.ipv4) && !used_v6.contains(&a.ipv6) => {
                used_v4.insert(a.ipv4);
                used_v6.insert(a.ipv6);
                out.insert(key.clone(), *a);
            }
            _ => fresh.push(key),
        }
    }
    let mut offset = FIRST;
    for key in fresh {
        while offset <= LAST {
            let a = pair(offset);
            offset += 1;
            if !used_v4.contains(&a.ipv4) && !used_v6.contains(&a.ipv6) {
                used_v4.insert(a.ipv4);
                used_v6.insert(a.ipv6);
                out.insert(key.clone(), a);
                break;
            }
        }
    }
    out
}

/// The IPv4/IPv6 pair at `offset` (same offset in both ranges).
fn pair(offset: u32) -> Addresses {
    Addresses {
        ipv4: Ipv4Addr::from(V4_BASE + offset),
        ipv6: Ipv6Addr::from(V6_BASE + u128::from(offset)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AllocKey {
        AllocKey {
            namespace: "istio-egress".into(),
            name: name.into(),
            host: name.into(),
        }
    }

    #[test]
    fn writer_gives_the_walkthrough_addresses_first() {
        let wanted: HashSet<_> = [key("httpbin.org")].into();
        let got = assign(&wanted, &HashMap::new(), &HashMap::new(), true);
        let a = got[&key("httpbin.org")];
        assert_eq!(a.ipv4.to_string(), "240.240.0.2");
        assert_eq!(a.ipv6.to_string(), "2001:2::2");
    }

    #[test]
    fn published_addresses_win_and_are_never_reused() {
        let published: HashMap<_, _> = [(key("a.com"), pair(2))].into();
        let wanted: HashSet<_> = [key("a.com"), key("b.com")].into();
        let got = assign(&wanted, &published, &HashMap::new(), true);
        assert_eq!(got[&key("a.com")], pair(2));
        assert_eq!(got[&key("b.com")], pair(3));
    }

    #[test]
    fn readers_wait_for_the_writer() {
        let published: HashMap<_, _> = [(key("a.com"), pair(9))].into();
        let wanted: HashSet<_> = [key("a.com"), key("b.com")].into();
        let got = assign(&wanted, &published, &HashMap::new(), false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[&key("a.com")], pair(9));
    }

    #[test]
    fn proposals_stay_until_published() {
        // a.com was given offset 5 in an earlier round whose status patch is
        // not visible yet: it keeps that pair instead of taking the lowest.
        let proposed: HashMap<_, _> = [(key("a.com"), pair(5))].into();
        let wanted: HashSet<_> = [key("a.com"), key("b.com")].into();
        let got = assign(&wanted, &HashMap::new(), &proposed, true);
        assert_eq!(got[&key("a.com")], pair(5));
        assert_eq!(got[&key("b.com")], pair(2));
    }
}

//! ServiceEntry address auto-allocation: one IPv4 from 240.240.0.0/16 and one
//! IPv6 from 2001:2::/48 per (namespace, name, host), kept in
//! `<state_dir>/addresses.json` so a host keeps its addresses across restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic;
use super::error::ConfigError;
use crate::net::HostName;

const V4_BASE: u32 = u32::from_be_bytes([240, 240, 0, 0]);
const V6_BASE: u128 = 0x2001_0002_0000_0000_0000_0000_0000_0000;
/// First offset handed out (Istio's first address is `.2`; `.0`/`.1` stay reserved).
const FIRST: u32 = 2;
/// Last offset: 240.240.255.254 (the IPv6 range is far larger; the IPv4 one bounds).
const LAST: u32 = 0xfffe;

/// Which ServiceEntry host an address pair belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AllocKey {
    /// ServiceEntry namespace.
    pub namespace: String,
    /// ServiceEntry name.
    pub name: String,
    /// Host.
    pub host: HostName,
}

/// The two addresses of one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// From 240.240.0.0/16.
    pub ipv4: Ipv4Addr,
    /// From 2001:2::/48.
    pub ipv6: Ipv6Addr,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    key: AllocKey,
    #[serde(flatten)]
    addresses: Addresses,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    entries: Vec<Entry>,
}

/// Allocation errors.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// More hosts than the IPv4 range holds.
    #[error("address range 240.240.0.0/16 exhausted: {0} hosts could not get an address")]
    Exhausted(usize),
}

/// The allocator: current assignments plus what is in use, for O(1) checks.
#[derive(Debug)]
pub struct Allocator {
    path: Option<PathBuf>,
    assigned: HashMap<AllocKey, Addresses>,
    used_v4: HashSet<Ipv4Addr>,
    used_v6: HashSet<Ipv6Addr>,
    /// Next offset to try; moving forward means a released address is not
    /// handed to another host at once.
    cursor: u32,
}

impl Allocator {
    /// An empty allocator that persists nothing (tests, dry runs).
    pub fn in_memory() -> Self {
        Allocator {
            path: None,
            assigned: HashMap::new(),
            used_v4: HashSet::new(),
            used_v6: HashSet::new(),
            cursor: FIRST,
        }
    }

    /// Loads `path` (absent file = nothing allocated yet).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut me = Allocator::in_memory();
        me.path = Some(path.to_path_buf());
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(me),
            Err(e) => return Err(ConfigError::io(path, e)),
        };
        let state: StateFile = serde_json::from_slice(&text).map_err(|e| ConfigError::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for entry in state.entries {
            let a = entry.addresses;
            // A hand-edited file may hold duplicates: the first owner keeps it.
            if me.used_v4.contains(&a.ipv4) || me.used_v6.contains(&a.ipv6) {
                continue;
            }
            me.insert(entry.key, a);
        }
        Ok(me)
    }

    fn insert(&mut self, key: AllocKey, a: Addresses) {
        self.used_v4.insert(a.ipv4);
        self.used_v6.insert(a.ipv6);
        self.assigned.insert(key, a);
    }

    /// Current assignments.
    pub fn assigned(&self) -> &HashMap<AllocKey, Addresses> {
        &self.assigned
    }

    /// Makes the assignments exactly `wanted`: keeps existing pairs, releases
    /// keys no longer wanted, gives new keys fresh pairs (in key order, so the
    /// result does not depend on hash order). Returns whether anything changed.
    pub fn reconcile(&mut self, wanted: &HashSet<AllocKey>) -> Result<bool, AllocError> {
        let before = self.assigned.len();
        let released: Vec<AllocKey> = self
            .assigned
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in &released {
            if let Some(a) = self.assigned.remove(key) {
                self.used_v4.remove(&a.ipv4);
                self.used_v6.remove(&a.ipv6);
            }
        }
        let mut new: Vec<&AllocKey> = wanted
            .iter()
            .filter(|k| !self.assigned.contains_key(*k))
            .collect();
        new.sort();
        let mut exhausted = 0;
        for key in new {
            match self.next_free() {
                Some(a) => self.insert(key.clone(), a),
                None => exhausted += 1,
            }
        }
        if exhausted > 0 {
            return Err(AllocError::Exhausted(exhausted));
        }
        Ok(!released.is_empty() || self.assigned.len() != before)
    }

    /// Applies one change: releases `release`, then gives each key of
    /// `want` that has none a fresh pair (in key order). Costs what the
    /// change names, not what is assigned. Returns whether anything changed.
    pub fn update(&mut self, release: &[AllocKey], want: &[AllocKey]) -> Result<bool, AllocError> {
        let mut changed = false;
        for key in release {
            if let Some(a) = self.assigned.remove(key) {
                self.used_v4.remove(&a.ipv4);
                self.used_v6.remove(&a.ipv6);
                changed = true;
            }
        }
        let mut new: Vec<&AllocKey> = want
            .iter()
            .filter(|k| !self.assigned.contains_key(*k))
            .collect();
        new.sort();
        new.dedup();
        let mut exhausted = 0;
        for key in new {
            match self.next_free() {
                Some(a) => {
                    self.insert(key.clone(), a);
                    changed = true;
                }
                None => exhausted += 1,
            }
        }
        if exhausted > 0 {
            return Err(AllocError::Exhausted(exhausted));
        }
        Ok(changed)
    }

    /// The next free pair at or after the cursor, wrapping once around.
    fn next_free(&mut self) -> Option<Addresses> {
        let span = LAST - FIRST + 1;
        for step in 0..span {
            let offset = FIRST + (self.cursor - FIRST + step) % span;
            let a = Addresses {
                ipv4: Ipv4Addr::from(V4_BASE + offset),
                ipv6: Ipv6Addr::from(V6_BASE + u128::from(offset)),
            };
            if !self.used_v4.contains(&a.ipv4) && !self.used_v6.contains(&a.ipv6) {
                self.cursor = if offset == LAST { FIRST } else { offset + 1 };
                return Some(a);
            }
        }
        None
    }

    /// Writes the assignments to the state file (atomically, when changed).
    pub fn save(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let sorted: BTreeMap<&AllocKey, &Addresses> = self.assigned.iter().collect();
        let state = StateFile {
            entries: sorted
                .into_iter()
                .map(|(k, a)| Entry {
                    key: k.clone(),
                    addresses: *a,
                })
                .collect(),
        };
        let mut text = serde_json::to_vec_pretty(&state).map_err(|e| ConfigError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        atomic::write_if_changed(path, &text)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str, host: &str) -> AllocKey {
        AllocKey {
            namespace: ns.into(),
            name: name.into(),
            host: host.into(),
        }
    }

    fn wanted(keys: &[AllocKey]) -> HashSet<AllocKey> {
        keys.iter().cloned().collect()
    }

    #[test]
    fn first_host_gets_the_walkthrough_addresses() {
        let mut a = Allocator::in_memory();
        let k = key("istio-egress", "httpbin.org", "httpbin.org");
        assert!(a.reconcile(&wanted(std::slice::from_ref(&k))).unwrap());
        let got = a.assigned()[&k];
        assert_eq!(got.ipv4, "240.240.0.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(got.ipv6, "2001:2::2".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn stable_across_reconcile_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addresses.json");
        let (k1, k2) = (key("a", "x", "one.com"), key("a", "x", "two.com"));
        let mut a = Allocator::load(&path).unwrap();
        a.reconcile(&wanted(&[k1.clone(), k2.clone()])).unwrap();
        a.save().unwrap();
        let first = a.assigned().clone();
        // Same set again: nothing changes.
        assert!(!a.reconcile(&wanted(&[k1.clone(), k2.clone()])).unwrap());
        // A restart reads the same assignments back.
        let mut b = Allocator::load(&path).unwrap();
        assert_eq!(b.assigned(), &first);
        let k3 = key("b", "y", "three.com");
        b.reconcile(&wanted(&[k1.clone(), k2.clone(), k3.clone()]))
            .unwrap();
        assert_eq!(b.assigned()[&k1], first[&k1]);
        assert_eq!(b.assigned()[&k2], first[&k2]);
        assert!(!first.values().any(|v| *v == b.assigned()[&k3]));
    }

    #[test]
    fn release_when_host_disappears() {
        let mut a = Allocator::in_memory();
        let (k1, k2) = (key("a", "x", "one.com"), key("a", "x", "two.com"));
        a.reconcile(&wanted(&[k1.clone(), k2.clone()])).unwrap();
        let gone = a.assigned()[&k2];
        assert!(a.reconcile(&wanted(std::slice::from_ref(&k1))).unwrap());
        assert_eq!(a.assigned().len(), 1);
        assert!(!a.used_v4.contains(&gone.ipv4));
        assert!(!a.used_v6.contains(&gone.ipv6));
    }

    #[test]
    fn ten_thousand_hosts_unique_and_fast() {
        let mut a = Allocator::in_memory();
        let keys: HashSet<AllocKey> = (0..10_000)
            .map(|i| key("ns", &format!("se{i}"), &format!("h{i}.example.com")))
            .collect();
        let start = std::time::Instant::now();
        a.reconcile(&keys).unwrap();
        // One more host on top of 10,000 must not rescan everything per host.
        let mut more = keys.clone();
        more.insert(key("ns", "late", "late.example.com"));
        a.reconcile(&more).unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let v4: HashSet<_> = a.assigned().values().map(|x| x.ipv4).collect();
        let v6: HashSet<_> = a.assigned().values().map(|x| x.ipv6).collect();
        assert_eq!(v4.len(), 10_001);
        assert_eq!(v6.len(), 10_001);
    }

    #[test]
    fn update_touches_only_the_named_keys() {
        let mut a = Allocator::in_memory();
        let (k1, k2, k3) = (
            key("a", "x", "one.com"),
            key("a", "y", "two.com"),
            key("b", "z", "three.com"),
        );
        a.reconcile(&wanted(&[k1.clone(), k2.clone()])).unwrap();
        let before = a.assigned().clone();
        assert!(!a.update(&[], std::slice::from_ref(&k1)).unwrap());
        assert!(a
            .update(std::slice::from_ref(&k2), std::slice::from_ref(&k3))
            .unwrap());
        assert_eq!(a.assigned()[&k1], before[&k1]);
        assert!(!a.assigned().contains_key(&k2));
        // Same result as a full reconcile to the same set.
        let mut full = Allocator::in_memory();
        full.reconcile(&wanted(&[k1.clone(), k2.clone()])).unwrap();
        full.reconcile(&wanted(&[k1, k3])).unwrap();
        assert_eq!(full.assigned(), a.assigned());
    }

    #[test]
    fn corrupt_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addresses.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = Allocator::load(&path).unwrap_err().to_string();
        assert!(err.contains("addresses.json"), "{err}");
    }
}

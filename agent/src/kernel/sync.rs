//! The diff that keeps `SERVICES` and `SERVICE_RANGES` equal to the config
//! snapshot while touching only the entries that changed.

use std::collections::BTreeSet;

/// What to change in a map to go from `current` to `wanted`.
#[derive(Debug, PartialEq, Eq)]
pub struct Diff<K> {
    /// Wanted keys the map lacks.
    pub add: Vec<K>,
    /// Keys in the map that are no longer wanted.
    pub remove: Vec<K>,
}

/// Computes the smallest change from `current` to `wanted`.
pub fn diff<K: Ord + Copy>(current: &BTreeSet<K>, wanted: &BTreeSet<K>) -> Diff<K> {
    Diff {
        add: wanted.difference(current).copied().collect(),
        remove: current.difference(wanted).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egret_common::{v4_mapped, ServiceKey};

    fn key(last: u8, port: u16) -> ServiceKey {
        ServiceKey {
            addr: v4_mapped([240, 240, 0, last]),
            port,
            _pad: 0,
        }
    }

    #[test]
    fn touches_only_what_changed() {
        let current = BTreeSet::from([key(1, 0), key(2, 0), key(3, 80)]);
        let wanted = BTreeSet::from([key(1, 0), key(3, 443), key(4, 0)]);
        let d = diff(&current, &wanted);
        assert_eq!(d.add, vec![key(3, 443), key(4, 0)]);
        assert_eq!(d.remove, vec![key(2, 0), key(3, 80)]);
    }

    #[test]
    fn equal_sets_change_nothing() {
        let set = BTreeSet::from([key(1, 0)]);
        let none = diff(&set, &set);
        assert!(none.add.is_empty() && none.remove.is_empty());
    }
}

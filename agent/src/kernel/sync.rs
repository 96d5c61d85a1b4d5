//! The diff that keeps `SERVICES` equal to the config snapshot while
//! touching only the entries that changed.

use std::collections::BTreeSet;

use egret_common::ServiceKey;

/// What to change in the map to go from `current` to `wanted`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServiceDiff {
    /// Wanted keys the map lacks.
    pub add: Vec<ServiceKey>,
    /// Keys in the map that are no longer wanted.
    pub remove: Vec<ServiceKey>,
}

/// Computes the smallest change from `current` to `wanted`.
pub fn diff(current: &BTreeSet<ServiceKey>, wanted: &BTreeSet<ServiceKey>) -> ServiceDiff {
    ServiceDiff {
        add: wanted.difference(current).copied().collect(),
        remove: current.difference(wanted).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egret_common::v4_mapped;

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
        assert_eq!(diff(&set, &set), ServiceDiff::default());
    }
}

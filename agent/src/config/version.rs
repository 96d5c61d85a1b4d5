//! One version of an object as the agent keeps it in memory for as long as
//! it is in force: the typed view, the text the user wrote (what is kept as
//! its last good version on disk) and a digest of it. The raw value stays
//! in the file (`get -o yaml` reads it there), which keeps 10,000 objects
//! from costing 10,000 YAML trees.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::object::Object;

/// An object kept in memory, compared by digest instead of by its YAML.
#[derive(Debug)]
pub struct Version {
    /// The object; `raw` is `Null` (see the module doc).
    pub object: Object,
    /// Digest of `raw` as parsed: equal digests mean the same document
    /// (comments and formatting aside, as `raw == raw` did).
    pub digest: u128,
}

impl Version {
    /// Keeps `object`'s typed view, its text and the digest of its document.
    pub fn new(mut object: Object) -> Self {
        let digest = digest(&object.raw);
        object.raw = serde_yaml::Value::Null;
        Version { object, digest }
    }
}

/// 128 bits from two differently seeded SipHash runs: a collision (a change
/// taken for no change) is out of reach in practice.
pub fn digest(value: &impl Hash) -> u128 {
    let half = |seed: u8| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        value.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::manifests::{objects, SERVICE_ENTRY};

    #[test]
    fn digest_ignores_comments_and_sees_changes() {
        let a = Version::new(objects(SERVICE_ENTRY).remove(0));
        let commented = format!("# a comment\n{SERVICE_ENTRY}");
        let b = Version::new(objects(&commented).remove(0));
        let changed = SERVICE_ENTRY.replace("number: 80", "number: 81");
        let c = Version::new(objects(&changed).remove(0));
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
        assert!(a.object.raw.is_null());
        assert_eq!(a.object.text, SERVICE_ENTRY);
    }
}

//! Objects refused with no last good version to fall back on. For most
//! kinds that means the object is simply not in force. A kind whose absence
//! would widen access gets a fail-closed stand-in from the compiler
//! instead: an AuthorizationPolicy that cannot be understood denies what it
//! targets ([`crate::authz::fail_closed`]); MeshConfig and Sidecars that
//! cannot be read make their scope REGISTRY_ONLY. Another kind joins by adding an
//! arm to [`has_stand_in`] and to [`super::compile::compile_with`].

use serde_yaml::Value;

use super::object::ObjectKey;
use super::version::digest;

/// A refused object with no last good version.
#[derive(Debug, Clone, PartialEq)]
pub struct Unaccepted {
    /// Its identity.
    pub key: ObjectKey,
    /// Its `spec` as written (`Null` when unknown: the file does not parse).
    pub spec: Value,
}

impl Unaccepted {
    /// Digest of what the stand-in is made from (a change recompiles).
    pub fn digest(&self) -> u128 {
        digest(&(&self.key, &self.spec))
    }
}

/// Whether the compiler stands in for a refused object of `kind`: an
/// AuthorizationPolicy denies what it targets; istiod's MeshConfig
/// ConfigMap and a Sidecar make their scope REGISTRY_ONLY.
pub fn has_stand_in(kind: &str) -> bool {
    matches!(kind, "AuthorizationPolicy" | "ConfigMap" | "Sidecar")
}

//! What the kernel should enforce for a workload of a namespace.

use egret_common::{ENROLL_DNS, ENROLL_REGISTRY_ONLY, ENROLL_SERVICES};

use crate::config::mesh::OutboundMode;
use crate::config::snapshot::Snapshot;

/// The `ENROLL_*` flags for a workload of `namespace`, or `None` when its
/// namespace is not in the mesh (ambient).
pub fn wanted_flags(snapshot: &Snapshot, namespace: &str) -> Option<u32> {
    if !snapshot.is_ambient(namespace) {
        return None;
    }
    let mut flags = ENROLL_SERVICES | ENROLL_DNS;
    if snapshot.outbound_mode(namespace) == OutboundMode::RegistryOnly {
        flags |= ENROLL_REGISTRY_ONLY;
    }
    Some(flags)
}

/// `ALLOW_ANY` / `REGISTRY_ONLY` for flags in force (`-` when not enrolled).
pub fn mode_name(flags: Option<u32>) -> &'static str {
    match flags {
        None => "-",
        Some(f) if f & ENROLL_REGISTRY_ONLY != 0 => OutboundMode::RegistryOnly.name(),
        Some(_) => OutboundMode::AllowAny.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::allocate::Allocator;
    use crate::config::compile::{compile, wanted_addresses};
    use crate::config::object::Object;
    use crate::testing::manifests::objects;

    fn snapshot(texts: &[&str]) -> Snapshot {
        let all: Vec<Object> = texts.iter().flat_map(|t| objects(t)).collect();
        let mut alloc = Allocator::in_memory();
        alloc.reconcile(&wanted_addresses(&all)).unwrap();
        compile(&all, alloc.assigned())
    }

    const AMBIENT: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: app, labels: {istio.io/dataplane-mode: ambient}}\n";
    const OTHER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: other, labels: {istio.io/dataplane-mode: ambient}}\n";
    const MESH_REGISTRY_ONLY: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n";

    fn sidecar(ns: &str, name: &str, policy: &str) -> String {
        format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{policy}")
    }

    const REGISTRY_ONLY: &str = "  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n";
    const ALLOW_ANY: &str = "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n";
    const BASIC: u32 = ENROLL_SERVICES | ENROLL_DNS;
    const LOCKED: u32 = BASIC | ENROLL_REGISTRY_ONLY;

    #[test]
    fn mesh_default_is_allow_any() {
        let s = snapshot(&[AMBIENT]);
        assert_eq!(wanted_flags(&s, "app"), Some(BASIC));
        assert_eq!(wanted_flags(&s, "not-ambient"), None);
    }

    #[test]
    fn meshconfig_then_root_sidecar_then_namespace_sidecar() {
        let s = snapshot(&[AMBIENT, OTHER, MESH_REGISTRY_ONLY]);
        assert_eq!(wanted_flags(&s, "app"), Some(LOCKED));
        // A namespace's own Sidecar overrides the mesh both ways.
        let open = sidecar("app", "default", ALLOW_ANY);
        let s = snapshot(&[AMBIENT, OTHER, MESH_REGISTRY_ONLY, &open]);
        assert_eq!(wanted_flags(&s, "app"), Some(BASIC));
        assert_eq!(wanted_flags(&s, "other"), Some(LOCKED));
        // The root namespace's Sidecar is the default for namespaces without one.
        let root = sidecar("istio-system", "default", REGISTRY_ONLY);
        let s = snapshot(&[AMBIENT, OTHER, &root, &open]);
        assert_eq!(wanted_flags(&s, "other"), Some(LOCKED));
        assert_eq!(wanted_flags(&s, "app"), Some(BASIC));
        // A Sidecar without a policy defers to MeshConfig, not to the root Sidecar.
        let bare = sidecar("app", "default", "  {}\n");
        let s = snapshot(&[AMBIENT, &root, &bare]);
        assert_eq!(wanted_flags(&s, "app"), Some(BASIC));
    }

    #[test]
    fn several_namespace_sidecars_take_the_strictest() {
        let a = sidecar("app", "a", ALLOW_ANY);
        let b = sidecar("app", "b", REGISTRY_ONLY);
        assert_eq!(
            wanted_flags(&snapshot(&[AMBIENT, &a, &b]), "app"),
            Some(LOCKED)
        );
        assert_eq!(
            wanted_flags(&snapshot(&[AMBIENT, &b, &a]), "app"),
            Some(LOCKED)
        );
    }
}

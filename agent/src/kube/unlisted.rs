//! Kinds egret could not list from the API (forbidden, the API down at
//! start) and has nothing stored for: their objects are unknown, so the
//! kinds that only ever narrow access get fail-closed stand-ins instead of
//! running as if there were none. An AuthorizationPolicy could be an ALLOW
//! list or a DENY: every waypoint denies until policies are listed.
//! MeshConfig and Sidecars could say REGISTRY_ONLY: the mesh is
//! REGISTRY_ONLY until they are. A kind the API does not serve at all (its
//! CRD is not installed) is listed as empty, not unknown.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::reconcile::KindObjects;
use crate::config::kinds::config_map::{MESH_CONFIG_NAME, MESH_CONFIG_NAMESPACE};
use crate::config::object::{Object, ObjectKey};
use crate::config::snapshot::ROOT_NAMESPACE;
use crate::config::unaccepted::Unaccepted;

/// Name of the stand-ins egret makes for unlisted kinds.
pub const STAND_IN_NAME: &str = "egret-unlisted";

/// The stand-ins for the kinds in `kinds` not listed, given what is in
/// force (`in_force`, including stored versions).
pub fn stand_ins(kinds: &[KindObjects], in_force: &BTreeMap<ObjectKey, Object>) -> Vec<Unaccepted> {
    let known = |kind: &str| in_force.keys().any(|k| k.kind == kind);
    let mut out = Vec::new();
    for kind in kinds.iter().filter(|k| !k.listed) {
        let stand_in = match kind.info.kind {
            "AuthorizationPolicy" if !known("AuthorizationPolicy") => Unaccepted {
                key: ObjectKey::new("AuthorizationPolicy", ROOT_NAMESPACE, STAND_IN_NAME),
                // Every waypoint: policies of the root namespace may target
                // the GatewayClass.
                spec: serde_yaml::from_str(
                    "targetRefs:\n- group: gateway.networking.k8s.io\n  kind: GatewayClass\n  name: istio-waypoint\n",
                )
                .expect("valid YAML"),
            },
            "ConfigMap"
                if !in_force.contains_key(&ObjectKey::new(
                    "ConfigMap",
                    MESH_CONFIG_NAMESPACE,
                    MESH_CONFIG_NAME,
                )) =>
            {
                Unaccepted {
                    key: ObjectKey::new("ConfigMap", MESH_CONFIG_NAMESPACE, MESH_CONFIG_NAME),
                    spec: Value::Null,
                }
            }
            // The root namespace's Sidecar is every namespace's default.
            "Sidecar" if !known("Sidecar") => Unaccepted {
                key: ObjectKey::new("Sidecar", ROOT_NAMESPACE, STAND_IN_NAME),
                spec: Value::Null,
            },
            _ => continue,
        };
        out.push(stand_in);
    }
    out
}

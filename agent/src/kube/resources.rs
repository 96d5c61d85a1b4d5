//! The API resources egret watches: every config kind, addressed through
//! its group, preferred version and plural, as `DynamicObject`s so each
//! goes through the same parser as a manifest in a folder.

use kube::core::ApiResource;

use crate::config::kinds::{KindInfo, KINDS};

/// The resource of `info` at its preferred (first listed) version.
pub fn api_resource(info: &KindInfo) -> ApiResource {
    let version = info.versions[0];
    let api_version = if info.group.is_empty() {
        version.to_string()
    } else {
        format!("{}/{version}", info.group)
    };
    ApiResource {
        group: info.group.to_string(),
        version: version.to_string(),
        api_version,
        kind: info.kind.to_string(),
        plural: info.plural.to_string(),
    }
}

/// Every kind the config source watches.
pub fn watched() -> impl Iterator<Item = &'static KindInfo> {
    KINDS.iter().copied()
}

/// Where a kind is watched: cluster-wide, or one namespace with a field
/// selector (ConfigMaps: only istiod's `istio-system/istio`, so egret needs
/// no cluster-wide read of ConfigMaps).
pub enum Scope {
    /// Every namespace.
    All,
    /// One namespace; objects matching the field selector.
    Namespace {
        namespace: &'static str,
        fields: &'static str,
    },
}

/// The field selector of istiod's ConfigMap (`MESH_CONFIG_NAME`).
const MESH_CONFIG_FIELDS: &str = "metadata.name=istio";

/// The scope egret watches `info` in.
pub fn scope(info: &KindInfo) -> Scope {
    match info.kind {
        "ConfigMap" => Scope::Namespace {
            namespace: crate::config::kinds::config_map::MESH_CONFIG_NAMESPACE,
            fields: MESH_CONFIG_FIELDS,
        },
        _ => Scope::All,
    }
}

/// Whether the status writer patches this kind's `status`.
pub fn has_status(info: &KindInfo) -> bool {
    matches!(info.kind, "ServiceEntry" | "Gateway")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kinds::by_kind;

    #[test]
    fn resources_use_group_preferred_version_and_plural() {
        let se = api_resource(by_kind("ServiceEntry").unwrap());
        assert_eq!(se.api_version, "networking.istio.io/v1");
        assert_eq!(se.plural, "serviceentries");
        let gw = api_resource(by_kind("Gateway").unwrap());
        assert_eq!(gw.api_version, "gateway.networking.k8s.io/v1");
        let ns = api_resource(by_kind("Namespace").unwrap());
        assert_eq!((ns.group.as_str(), ns.api_version.as_str()), ("", "v1"));
        let ap = api_resource(by_kind("AuthorizationPolicy").unwrap());
        assert_eq!(ap.api_version, "security.istio.io/v1");
        assert!(watched().any(|k| k.kind == "DestinationRule"));
    }

    #[test]
    fn only_istiods_configmap_is_watched() {
        use crate::config::kinds::config_map::{MESH_CONFIG_NAME, MESH_CONFIG_NAMESPACE};
        let Scope::Namespace { namespace, fields } = scope(by_kind("ConfigMap").unwrap()) else {
            panic!("ConfigMaps are watched in one namespace")
        };
        assert_eq!(namespace, MESH_CONFIG_NAMESPACE);
        assert_eq!(fields, format!("metadata.name={MESH_CONFIG_NAME}"));
        assert!(matches!(scope(by_kind("Sidecar").unwrap()), Scope::All));
    }
}

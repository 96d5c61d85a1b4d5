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
}

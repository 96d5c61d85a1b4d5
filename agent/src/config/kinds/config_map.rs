//! `v1` ConfigMap. Only one matters to egret: `istio` in `istio-system`,
//! whose `mesh` key is Istio's MeshConfig (read the way istiod reads it).
//! Its content sits at the object's top level (`data`, `binaryData`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_content, Kind, KindInfo};
use crate::config::mesh::{self, MeshConfig};
use crate::config::object::{FieldError, ObjectMeta};

/// Top-level fields of a ConfigMap that form its content.
pub const CONTENT_FIELDS: &[&str] = &["data", "binaryData", "immutable"];
/// Namespace and name of the ConfigMap istiod reads MeshConfig from.
pub const MESH_CONFIG_NAMESPACE: &str = "istio-system";
/// See [`MESH_CONFIG_NAMESPACE`].
pub const MESH_CONFIG_NAME: &str = "istio";
/// The key holding MeshConfig as YAML.
pub const MESH_KEY: &str = "mesh";

/// ConfigMap content, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    /// `data`.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// `binaryData` (base64), accepted and unused.
    #[serde(default)]
    pub binary_data: BTreeMap<String, String>,
    /// `immutable`, accepted.
    #[serde(default)]
    pub immutable: Option<bool>,
    /// The MeshConfig of `istio-system/istio` (defaults when its `mesh` key is absent).
    #[serde(skip)]
    pub mesh: Option<MeshConfig>,
}

/// Whether `meta` names the ConfigMap istiod reads MeshConfig from.
pub fn is_mesh_config(meta: &ObjectMeta) -> bool {
    meta.name == MESH_CONFIG_NAME && meta.namespace.as_deref() == Some(MESH_CONFIG_NAMESPACE)
}

impl Kind for ConfigMap {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "ConfigMap",
        group: "",
        versions: &["v1"],
        plural: "configmaps",
        short_names: &["cm"],
        namespaced: true,
    };

    fn parse(spec: &Value, meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let mut cm: ConfigMap = typed_content(spec)?;
        if is_mesh_config(meta) {
            let text = cm.data.get(MESH_KEY).map(String::as_str).unwrap_or("");
            let parsed = mesh::parse_mesh_config(text).map_err(|(field, reason)| {
                vec![FieldError::new(
                    format!("data[{MESH_KEY}]{}", field.map(|f| format!(".{f}")).unwrap_or_default()),
                    reason,
                )]
            })?;
            cm.mesh = Some(parsed);
        }
        Ok(cm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::manifests::objects;
    use crate::config::kinds::Spec;
    use crate::config::mesh::{OutboundMode, PathNormalization};
    use crate::config::parse::tests::errors_of;

    fn mesh_cm(mesh: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |-\n{}\n", mesh.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"))
    }

    fn parsed(text: &str) -> ConfigMap {
        match &objects(text)[0].spec {
            Spec::ConfigMap(cm) => cm.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn istiods_configmap_carries_meshconfig() {
        let cm = parsed(&mesh_cm("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\npathNormalization:\n  normalization: MERGE_SLASHES\nenableTracing: true\ndefaultConfig:\n  holdApplicationUntilProxyStarts: true"));
        let mesh = cm.mesh.unwrap();
        assert_eq!(mesh.outbound, OutboundMode::RegistryOnly);
        assert_eq!(mesh.path_normalization, PathNormalization::MergeSlashes);
    }

    #[test]
    fn other_configmaps_are_just_data() {
        let cm = parsed("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: default}\ndata:\n  mesh: 'not: [yaml'\n");
        assert_eq!(cm.mesh, None);
    }

    #[test]
    fn bad_mesh_values_are_refused_with_the_field() {
        let errors = errors_of(&mesh_cm("outboundTrafficPolicy:\n  mode: DENY_ALL"));
        assert!(
            errors.iter().any(|e| e.contains("data[mesh].outboundTrafficPolicy.mode")
                && e.contains("DENY_ALL")),
            "{errors:?}"
        );
        let errors = errors_of(&mesh_cm("outboundTrafficPolicy: [REGISTRY_ONLY"));
        assert!(errors.iter().any(|e| e.contains("data[mesh]")), "{errors:?}");
    }
}

//! One manifest object: its identity, metadata, typed spec and the value the
//! user wrote (kept so `get -o yaml` shows exactly what was applied).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::kinds::{KindInfo, Spec};

/// Namespace given to namespaced objects that name none (as kubectl does).
pub const DEFAULT_NAMESPACE: &str = "default";

/// The metadata egret reads; every other metadata field is accepted and ignored
/// (creationTimestamp, uid, managedFields… may come from `kubectl get -o yaml`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.namespace`; filled with `default` for namespaced kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.labels` (`labels:` with no value is an empty map).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` (`annotations:` with no value is an empty map).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn null_as_empty<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// Identity of an object: kind, namespace (empty for cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Canonical kind, e.g. `ServiceEntry`.
    pub kind: &'static str,
    /// Empty for cluster-scoped kinds (Namespace).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(kind: &'static str, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The file an object of its own is stored in: `<kind>.<ns>.<name>.yaml`.
    pub fn file_name(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.namespace.is_empty() {
            format!("{kind}.{}.yaml", self.name)
        } else {
            format!("{kind}.{}.{}.yaml", self.namespace, self.name)
        }
    }
}

/// `NAMESPACE/NAME` split in two, both parts non-empty (how the CLI names
/// a namespaced object).
pub fn split_namespaced(text: &str) -> Result<(&str, &str), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns, name))
        }
        _ => Err(format!("`{text}` is not NAMESPACE/NAME")),
    }
}

impl fmt::Display for ObjectKey {
    /// `ServiceEntry istio-egress/httpbin.org`, `Namespace istio-egress`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A field-level problem found while validating one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the object root, e.g. `spec.ports[1].number`.
    pub field: String,
    /// Why the value is refused.
    pub reason: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A valid object, as parsed from one YAML document.
#[derive(Clone, Debug)]
pub struct Object {
    /// What kind of object this is.
    pub info: &'static KindInfo,
    /// `apiVersion` as written.
    pub api_version: String,
    /// Metadata; `namespace` is always set for namespaced kinds.
    pub meta: ObjectMeta,
    /// The typed, validated spec.
    pub spec: Spec,
    /// The document as the user wrote it (any `status` removed).
    pub raw: serde_yaml::Value,
    /// The document's original text (comments included).
    pub text: String,
}

impl Object {
    /// The object's identity.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            self.info.kind,
            self.meta.namespace.clone().unwrap_or_default(),
            self.meta.name.clone(),
        )
    }

    /// Namespace ("" for cluster-scoped kinds).
    pub fn namespace(&self) -> &str {
        self.meta.namespace.as_deref().unwrap_or("")
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// kubectl's `<kind>.<group>/<name>` (`namespace/<name>` for core kinds).
    pub fn kubectl_ref(&self) -> String {
        format!("{}/{}", self.info.qualified_kind(), self.meta.name)
    }
}

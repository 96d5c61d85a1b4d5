//! The kind registry. Adding a kind is one file here (a type implementing
//! [`Kind`]) and one line in the `registry!` call below.

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::object::{FieldError, ObjectMeta};

/// Static facts about a kind: names kubectl accepts and versions served.
#[derive(Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// Canonical kind, e.g. `ServiceEntry`.
    pub kind: &'static str,
    /// API group; empty for core (`v1`) kinds.
    pub group: &'static str,
    /// Versions served, e.g. `["v1", "v1beta1"]`.
    pub versions: &'static [&'static str],
    /// Lowercase plural, e.g. `serviceentries`.
    pub plural: &'static str,
    /// Short names, e.g. `["se"]`.
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl KindInfo {
    /// Whether `api_version` (`group/version`, or `version` for core) serves this kind.
    pub fn serves(&self, api_version: &str) -> bool {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        group == self.group && self.versions.contains(&version)
    }

    /// The apiVersions this kind accepts, for error messages.
    pub fn api_versions(&self) -> Vec<String> {
        self.versions
            .iter()
            .map(|v| {
                if self.group.is_empty() {
                    v.to_string()
                } else {
                    format!("{}/{v}", self.group)
                }
            })
            .collect()
    }

    /// kubectl's `serviceentry.networking.istio.io` / `namespace`.
    pub fn qualified_kind(&self) -> String {
        qualify(&self.kind.to_ascii_lowercase(), self.group)
    }

    /// kubectl's resource name in errors: `serviceentries.networking.istio.io`.
    pub fn resource(&self) -> String {
        qualify(self.plural, self.group)
    }

    /// Whether `name` is one of the names kubectl accepts for this kind
    /// (kind, plural, short name, each optionally `.group`), any case.
    pub fn accepts(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let (base, group) = match name.split_once('.') {
            Some((b, g)) => (b, Some(g)),
            None => (name.as_str(), None),
        };
        if group.is_some_and(|g| g != self.group) {
            return false;
        }
        base == self.kind.to_ascii_lowercase()
            || base == self.plural
            || self.short_names.contains(&base)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// A kind's typed spec: parsed from `spec` and checked.
pub trait Kind: Sized {
    /// The kind's static facts.
    const INFO: &'static KindInfo;

    /// Parses and validates `spec` (`Value::Null` when absent). Field paths in
    /// errors start at the object root (`spec.…`).
    fn parse(spec: &Value, meta: &ObjectMeta) -> Result<Self, Vec<FieldError>>;
}

/// Deserializes `spec` strictly, reporting the failing field's path.
pub fn typed_spec<T: DeserializeOwned + Default>(spec: &Value) -> Result<T, Vec<FieldError>> {
    if spec.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "spec".to_string()
        } else {
            format!("spec.{path}")
        };
        vec![FieldError::new(field, e.into_inner().to_string())]
    })
}

/// [`typed_spec`] for kinds whose content sits at the object's top level
/// (Secret, ConfigMap): field paths without the `spec.` prefix.
pub fn typed_content<T: DeserializeOwned + Default>(content: &Value) -> Result<T, Vec<FieldError>> {
    typed_spec(content).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| {
                let field = e.field.strip_prefix("spec.").unwrap_or(&e.field);
                FieldError::new(field, e.reason)
            })
            .collect()
    })
}

macro_rules! registry {
    ($($variant:ident => $module:ident :: $ty:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// The typed spec of a supported kind.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Spec {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant($module::$ty),
            )*
        }

        /// Every supported kind, in the order `get` and errors list them.
        pub const KINDS: &[&KindInfo] = &[$(<$module::$ty as Kind>::INFO),*];

        /// Parses the spec of canonical kind `kind`; `None` for an unknown kind.
        pub fn parse_spec(
            kind: &str,
            spec: &Value,
            meta: &ObjectMeta,
        ) -> Option<Result<Spec, Vec<FieldError>>> {
            $(
                if kind == <$module::$ty as Kind>::INFO.kind {
                    return Some(<$module::$ty as Kind>::parse(spec, meta).map(Spec::$variant));
                }
            )*
            None
        }
    };
}

registry! {
    Namespace => namespace::Namespace,
    Gateway => gateway::Gateway,
    ServiceEntry => service_entry::ServiceEntry,
    DestinationRule => destination_rule::DestinationRule,
    Secret => secret::Secret,
    AuthorizationPolicy => authorization_policy::AuthorizationPolicy,
    VirtualService => virtual_service::VirtualService,
    ConfigMap => config_map::ConfigMap,
    Sidecar => sidecar::Sidecar,
}

/// The kind named `kind` exactly as in a manifest's `kind:` field.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().copied().find(|k| k.kind == kind)
}

/// The kind a kubectl-style resource name refers to (`se`, `gateways`, `NS`…).
pub fn lookup(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().copied().find(|k| k.accepts(name))
}

/// Like [`lookup`], with kubectl's error for an unknown resource type.
pub fn resolve(name: &str) -> Result<&'static KindInfo, super::ConfigError> {
    lookup(name).ok_or_else(|| super::ConfigError::UnknownResourceType(name.to_string()))
}

/// The key of object `name` of this kind; `namespace` (default `default`)
/// only counts for namespaced kinds.
pub fn key_for(
    info: &'static KindInfo,
    namespace: Option<&str>,
    name: &str,
) -> super::object::ObjectKey {
    let namespace = if info.namespaced {
        namespace.unwrap_or(super::object::DEFAULT_NAMESPACE)
    } else {
        ""
    };
    super::object::ObjectKey::new(info.kind, namespace, name)
}

/// `Namespace, Gateway, ServiceEntry`, for error messages.
pub fn supported() -> String {
    KINDS.iter().map(|k| k.kind).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        let cases = [
            ("serviceentry", Some("ServiceEntry")),
            ("ServiceEntries", Some("ServiceEntry")),
            ("se", Some("ServiceEntry")),
            ("serviceentries.networking.istio.io", Some("ServiceEntry")),
            ("gateway", Some("Gateway")),
            ("gateways", Some("Gateway")),
            ("GTW", Some("Gateway")),
            ("gateways.gateway.networking.k8s.io", Some("Gateway")),
            ("ns", Some("Namespace")),
            ("namespaces", Some("Namespace")),
            ("Namespace", Some("Namespace")),
            ("gateways.networking.istio.io", None),
            ("pods", None),
        ];
        for (name, want) in cases {
            assert_eq!(lookup(name).map(|k| k.kind), want, "{name}");
        }
    }

    #[test]
    fn api_versions_served() {
        let se = by_kind("ServiceEntry").unwrap();
        let gw = by_kind("Gateway").unwrap();
        let ns = by_kind("Namespace").unwrap();
        let cases = [
            (se, "networking.istio.io/v1", true),
            (se, "networking.istio.io/v1beta1", true),
            (se, "networking.istio.io/v1alpha3", true),
            (se, "networking.istio.io/v2", false),
            (se, "v1", false),
            (gw, "gateway.networking.k8s.io/v1", true),
            (gw, "gateway.networking.k8s.io/v1beta1", true),
            (gw, "networking.istio.io/v1", false),
            (ns, "v1", true),
            (ns, "core/v1", false),
        ];
        for (info, v, want) in cases {
            assert_eq!(info.serves(v), want, "{} {v}", info.kind);
        }
    }

    #[test]
    fn kubectl_output_names() {
        let se = by_kind("ServiceEntry").unwrap();
        assert_eq!(se.qualified_kind(), "serviceentry.networking.istio.io");
        assert_eq!(se.resource(), "serviceentries.networking.istio.io");
        let ns = by_kind("Namespace").unwrap();
        assert_eq!(ns.qualified_kind(), "namespace");
        assert_eq!(ns.resource(), "namespaces");
    }
}

//! Mesh-wide settings istiod reads from MeshConfig (the `istio` ConfigMap in
//! `istio-system`, key `mesh`) and the per-namespace `Sidecar` override of
//! the outbound traffic policy.
//!
//! MeshConfig is read as istiod reads it (`protomarshal.ApplyYAML` over the
//! defaults): unknown fields are accepted (MeshConfig has a hundred, egret
//! reads two), fields merge into the defaults, enum fields take the value
//! name or its number, and field names may be camelCase or snake_case.
//! An invalid value of a field egret reads refuses the whole ConfigMap.

use serde_yaml::Value;

/// MeshConfig `outboundTrafficPolicy.mode` (and Sidecar `outboundTrafficPolicy.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OutboundMode {
    /// Destinations outside the registry are reached directly (Istio's default).
    #[default]
    AllowAny,
    /// Only registry destinations: anything else is refused, in the kernel.
    RegistryOnly,
}

impl OutboundMode {
    /// Istio's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            OutboundMode::AllowAny => "ALLOW_ANY",
            OutboundMode::RegistryOnly => "REGISTRY_ONLY",
        }
    }
}

/// MeshConfig `pathNormalization.normalization`: how request paths are
/// normalized before AuthorizationPolicy and before going upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PathNormalization {
    /// No normalization.
    None,
    /// RFC 3986 normalization, backslashes as `/` (Istio's default, `DEFAULT` too).
    #[default]
    Base,
    /// BASE, then runs of `/` merged.
    MergeSlashes,
    /// BASE, `%2F`/`%5C` decoded, then slashes merged.
    DecodeAndMergeSlashes,
}

/// The mesh-wide settings egret honours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshConfig {
    /// `outboundTrafficPolicy.mode`, before any Sidecar override.
    pub outbound: OutboundMode,
    /// `pathNormalization.normalization`.
    pub path_normalization: PathNormalization,
}

/// A field path inside `mesh` (when known) and why its value is refused.
pub type MeshError = (Option<String>, String);

/// Parses the `mesh` key of istiod's ConfigMap over the defaults.
pub fn parse_mesh_config(text: &str) -> Result<MeshConfig, MeshError> {
    let mut mesh = MeshConfig::default();
    if text.trim().is_empty() {
        return Ok(mesh);
    }
    let value: Value = serde_yaml::from_str(text).map_err(|e| (None, format!("not YAML: {e}")))?;
    let root = match &value {
        Value::Null => return Ok(mesh),
        Value::Mapping(m) => m,
        _ => return Err((None, "MeshConfig must be a YAML mapping".into())),
    };
    if let Some(policy) = field(root, "outboundTrafficPolicy", "outbound_traffic_policy") {
        let at = "outboundTrafficPolicy";
        let policy = mapping(policy).map_err(|r| (Some(at.into()), r))?;
        if let Some(mode) = field(policy, "mode", "mode") {
            mesh.outbound = outbound_mode(mode).map_err(|r| (Some(format!("{at}.mode")), r))?;
        }
    }
    if let Some(norm) = field(root, "pathNormalization", "path_normalization") {
        let at = "pathNormalization";
        let norm = mapping(norm).map_err(|r| (Some(at.into()), r))?;
        if let Some(kind) = field(norm, "normalization", "normalization") {
            mesh.path_normalization =
                path_normalization(kind).map_err(|r| (Some(format!("{at}.normalization")), r))?;
        }
    }
    Ok(mesh)
}

/// An `OutboundTrafficPolicy.Mode` by name or number (`REGISTRY_ONLY` = 0,
/// `ALLOW_ANY` = 1).
pub fn outbound_mode(v: &Value) -> Result<OutboundMode, String> {
    match enum_value(v)? {
        EnumValue::Name("REGISTRY_ONLY") | EnumValue::Number(0) => Ok(OutboundMode::RegistryOnly),
        EnumValue::Name("ALLOW_ANY") | EnumValue::Number(1) => Ok(OutboundMode::AllowAny),
        other => Err(format!(
            "unsupported value {other}: supported values: \"ALLOW_ANY\", \"REGISTRY_ONLY\""
        )),
    }
}

/// A `ProxyPathNormalization.NormalizationType` by name or number.
fn path_normalization(v: &Value) -> Result<PathNormalization, String> {
    match enum_value(v)? {
        EnumValue::Name("DEFAULT" | "BASE") | EnumValue::Number(0 | 2) => Ok(PathNormalization::Base),
        EnumValue::Name("NONE") | EnumValue::Number(1) => Ok(PathNormalization::None),
        EnumValue::Name("MERGE_SLASHES") | EnumValue::Number(3) => {
            Ok(PathNormalization::MergeSlashes)
        }
        EnumValue::Name("DECODE_AND_MERGE_SLASHES") | EnumValue::Number(4) => {
            Ok(PathNormalization::DecodeAndMergeSlashes)
        }
        other => Err(format!("unsupported value {other}: supported values: \"DEFAULT\", \"NONE\", \"BASE\", \"MERGE_SLASHES\", \"DECODE_AND_MERGE_SLASHES\"")),
    }
}

/// A protobuf enum as JSON spells it.
enum EnumValue<'a> {
    Name(&'a str),
    Number(i64),
}

impl std::fmt::Display for EnumValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnumValue::Name(n) => write!(f, "{n:?}"),
            EnumValue::Number(n) => write!(f, "{n}"),
        }
    }
}

fn enum_value(v: &Value) -> Result<EnumValue<'_>, String> {
    match v {
        Value::String(s) => Ok(EnumValue::Name(s)),
        Value::Number(n) => n
            .as_i64()
            .map(EnumValue::Number)
            .ok_or_else(|| format!("not an enum value: {n}")),
        other => Err(format!("not an enum value: {other:?}")),
    }
}

fn field<'a>(map: &'a serde_yaml::Mapping, camel: &str, snake: &str) -> Option<&'a Value> {
    map.get(camel)
        .or_else(|| map.get(snake))
        .filter(|v| !v.is_null())
}

fn mapping(v: &Value) -> Result<&serde_yaml::Mapping, String> {
    v.as_mapping()
        .ok_or_else(|| "must be a mapping".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_merging() {
        assert_eq!(parse_mesh_config("").unwrap(), MeshConfig::default());
        assert_eq!(
            parse_mesh_config("enableTracing: true\n").unwrap(),
            MeshConfig::default()
        );
        // Merged over the default (ALLOW_ANY), as istiod's ApplyYAML does.
        assert_eq!(
            parse_mesh_config("outboundTrafficPolicy: {}\n")
                .unwrap()
                .outbound,
            OutboundMode::AllowAny
        );
        let m = parse_mesh_config(
            "outbound_traffic_policy:\n  mode: 0\npath_normalization:\n  normalization: 4\n",
        )
        .unwrap();
        assert_eq!(m.outbound, OutboundMode::RegistryOnly);
        assert_eq!(
            m.path_normalization,
            PathNormalization::DecodeAndMergeSlashes
        );
        for (name, want) in [
            ("DEFAULT", PathNormalization::Base),
            ("BASE", PathNormalization::Base),
            ("NONE", PathNormalization::None),
            ("MERGE_SLASHES", PathNormalization::MergeSlashes),
        ] {
            let m = parse_mesh_config(&format!("pathNormalization:\n  normalization: {name}\n"));
            assert_eq!(m.unwrap().path_normalization, want, "{name}");
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        let (field, reason) =
            parse_mesh_config("outboundTrafficPolicy:\n  mode: allow_any\n").unwrap_err();
        assert_eq!(field.as_deref(), Some("outboundTrafficPolicy.mode"));
        assert!(reason.contains("allow_any"), "{reason}");
        let (field, _) = parse_mesh_config("pathNormalization:\n  normalization: 9\n").unwrap_err();
        assert_eq!(field.as_deref(), Some("pathNormalization.normalization"));
        assert!(parse_mesh_config("- a\n").is_err());
    }
}

//! `v1` Namespace: only its labels matter to egret (read from metadata).

use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::config::object::{FieldError, ObjectMeta};

/// Label that enrolls a namespace's workloads (`ambient`).
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";

/// Namespace `spec` (Kubernetes allows only `finalizers`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// `spec.finalizers`, accepted and unused.
    #[serde(default)]
    pub finalizers: Vec<String>,
}

impl Kind for Namespace {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "Namespace",
        group: "",
        versions: &["v1"],
        plural: "namespaces",
        short_names: &["ns"],
        namespaced: false,
    };

    fn parse(spec: &Value, _meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        typed_spec(spec)
    }
}

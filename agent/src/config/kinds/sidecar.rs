//! `networking.istio.io` Sidecar. egret honours one thing of it: a
//! namespace-wide Sidecar's (no `workloadSelector`) `outboundTrafficPolicy`,
//! which overrides the mesh-wide mode for that namespace (or, in the root
//! namespace, for every namespace without a Sidecar of its own). Every other
//! field configures sidecar proxies, which ambient workloads do not have:
//! refused by name, never silently ignored.

use serde::Deserialize;
use serde_yaml::Value;

use super::{typed_spec, Kind, KindInfo};
use crate::config::mesh::{self, OutboundMode};
use crate::config::object::{FieldError, ObjectMeta};

/// Sidecar `spec`, as far as egret reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// `workloadSelector`: refused (sidecar proxies only).
    #[serde(default)]
    workload_selector: Option<Value>,
    /// `ingress`: refused.
    #[serde(default)]
    ingress: Option<Value>,
    /// `egress`: refused.
    #[serde(default)]
    egress: Option<Value>,
    /// `inboundConnectionPool`: refused.
    #[serde(default)]
    inbound_connection_pool: Option<Value>,
    /// `outboundTrafficPolicy`.
    #[serde(default)]
    outbound_traffic_policy: Option<SidecarOutbound>,
}

/// `spec.outboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SidecarOutbound {
    /// `mode`: a name or its number; absent is REGISTRY_ONLY (proto3's zero value).
    #[serde(default)]
    mode: Option<Value>,
    /// `egressProxy`: refused.
    #[serde(default)]
    egress_proxy: Option<Value>,
}

impl Sidecar {
    /// The mode this Sidecar sets, or `None` when it sets none (the
    /// mesh-wide mode applies).
    pub fn outbound_mode(&self) -> Option<OutboundMode> {
        let policy = self.outbound_traffic_policy.as_ref()?;
        // Validated at parse time.
        Some(match &policy.mode {
            None => OutboundMode::RegistryOnly,
            Some(v) => mesh::outbound_mode(v).unwrap_or(OutboundMode::RegistryOnly),
        })
    }
}

impl Kind for Sidecar {
    const INFO: &'static KindInfo = &KindInfo {
        kind: "Sidecar",
        group: "networking.istio.io",
        versions: &["v1", "v1beta1", "v1alpha3"],
        plural: "sidecars",
        short_names: &[],
        namespaced: true,
    };

    fn parse(spec: &Value, _meta: &ObjectMeta) -> Result<Self, Vec<FieldError>> {
        let sidecar: Sidecar = typed_spec(spec)?;
        let mut errors = Vec::new();
        let refused = [
            ("spec.workloadSelector", sidecar.workload_selector.is_some(), "egret applies only namespace-wide Sidecars (no workloadSelector): ambient workloads have no sidecar proxy to select"),
            ("spec.ingress", sidecar.ingress.is_some(), "not supported by egret: it configures a sidecar proxy's inbound listeners"),
            ("spec.egress", sidecar.egress.is_some(), "not supported by egret: use ServiceEntry exportTo-free registries and outboundTrafficPolicy"),
            ("spec.inboundConnectionPool", sidecar.inbound_connection_pool.is_some(), "not supported by egret: it configures a sidecar proxy's inbound connection pool"),
            (
                "spec.outboundTrafficPolicy.egressProxy",
                sidecar
                    .outbound_traffic_policy
                    .as_ref()
                    .is_some_and(|p| p.egress_proxy.is_some()),
                "not supported by egret: unknown destinations are refused or passed, never proxied",
            ),
        ];
        for (field, present, reason) in refused {
            if present {
                errors.push(FieldError::new(field, reason));
            }
        }
        if let Some(Some(mode)) = sidecar.outbound_traffic_policy.as_ref().map(|p| &p.mode) {
            if let Err(reason) = mesh::outbound_mode(mode) {
                errors.push(FieldError::new("spec.outboundTrafficPolicy.mode", reason));
            }
        }
        if errors.is_empty() {
            Ok(sidecar)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::manifests::objects;
    use crate::config::kinds::Spec;
    use crate::config::parse::tests::errors_of;

    fn sidecar(spec: &str) -> String {
        format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: bookinfo}}\nspec:\n{spec}")
    }

    fn mode(spec: &str) -> Option<OutboundMode> {
        match &objects(&sidecar(spec))[0].spec {
            Spec::Sidecar(s) => s.outbound_mode(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn modes_as_istio_reads_them() {
        assert_eq!(
            mode("  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n"),
            Some(OutboundMode::RegistryOnly)
        );
        assert_eq!(
            mode("  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n"),
            Some(OutboundMode::AllowAny)
        );
        // proto3: the zero value REGISTRY_ONLY when the policy is there without a mode.
        assert_eq!(
            mode("  outboundTrafficPolicy: {}\n"),
            Some(OutboundMode::RegistryOnly)
        );
        assert_eq!(mode("  outboundTrafficPolicy:\n    mode: 1\n"), Some(OutboundMode::AllowAny));
        // No policy: the mesh-wide mode applies.
        assert_eq!(mode("  {}\n"), None);
    }

    #[test]
    fn sidecar_proxy_fields_are_refused_by_name() {
        for (spec, field) in [
            ("  workloadSelector:\n    labels: {app: x}\n", "spec.workloadSelector"),
            ("  egress:\n  - hosts: ['./*']\n", "spec.egress"),
            ("  ingress:\n  - port: {number: 80, protocol: HTTP, name: h}\n", "spec.ingress"),
            ("  inboundConnectionPool: {}\n", "spec.inboundConnectionPool"),
            (
                "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy: {host: x}\n",
                "spec.outboundTrafficPolicy.egressProxy",
            ),
            ("  outboundTrafficPolicy:\n    mode: DENY\n", "spec.outboundTrafficPolicy.mode"),
        ] {
            let errors = errors_of(&sidecar(spec));
            assert!(errors.iter().any(|e| e.contains(field)), "{spec}: {errors:?}");
        }
    }
}

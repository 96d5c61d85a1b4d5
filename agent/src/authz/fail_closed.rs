//! The stand-in for an AuthorizationPolicy that cannot be understood and
//! has no last good version: it denies every request and connection to what
//! the policy targets. A broken policy must never widen access — left out,
//! a broken ALLOW would open its targets to everyone and a broken DENY would
//! let through what it was written to stop. When even the targets cannot be
//! read, the stand-in denies at every waypoint and ServiceEntry of the
//! policy's namespace (the only places its targetRefs may name).

use serde::Deserialize;
use serde_yaml::Value;

use super::compile::targets_of;
use super::policy::{Action, CompiledPolicy, PolicyRef, PolicyTarget};
use super::rule::CompiledRule;
use super::spec::{AuthorizationPolicySpec, PolicyTargetReference, WorkloadSelector};

/// The targeting fields alone, read from a spec that failed as a whole.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Targeting {
    #[serde(default)]
    selector: Option<Value>,
    #[serde(default)]
    target_ref: Option<PolicyTargetReference>,
    #[serde(default)]
    target_refs: Vec<PolicyTargetReference>,
}

/// A DENY of everything policy `namespace/name` targets, read from its
/// invalid `spec` (`Null` when unknown).
pub fn fail_closed(namespace: &str, name: &str, spec: &Value) -> CompiledPolicy {
    let targets = readable_targets(namespace, name, spec).unwrap_or_else(|| {
        vec![PolicyTarget::Namespace {
            namespace: namespace.to_string(),
        }]
    });
    CompiledPolicy {
        reference: PolicyRef::new(namespace, name, Action::Deny),
        dry_run: false,
        targets,
        // One empty rule: matches every request and connection.
        rules: vec![CompiledRule::new(Vec::new(), Vec::new(), Vec::new())],
    }
}

/// The targets, when the targeting fields are valid on their own (an
/// unknown spec, `Null`, has none).
fn readable_targets(namespace: &str, name: &str, spec: &Value) -> Option<Vec<PolicyTarget>> {
    if !spec.is_mapping() {
        return None;
    }
    let targeting: Targeting = serde_yaml::from_value(spec.clone()).ok()?;
    let spec = AuthorizationPolicySpec {
        selector: targeting.selector.map(|_| WorkloadSelector::default()),
        target_ref: targeting.target_ref,
        target_refs: targeting.target_refs,
        ..AuthorizationPolicySpec::default()
    };
    targets_of(namespace, name, &spec).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::authz::{GatewayKey, NamespacedName, PolicySet, RequestAttrs, TargetKey};

    fn target<'a>(gateway_ns: &'a str, gateway: &'a str, se: &'a str) -> TargetKey<'a> {
        TargetKey {
            gateway: GatewayKey {
                namespace: gateway_ns,
                name: gateway,
                class: "istio-waypoint",
            },
            service_entry: Some(NamespacedName {
                namespace: gateway_ns,
                name: se,
            }),
            service: None,
        }
    }

    /// Whether the stand-in of `spec` (YAML) in `istio-egress` denies a TCP
    /// connection at `target`.
    fn denies(spec: &str, target: TargetKey<'_>) -> bool {
        let spec: Value = serde_yaml::from_str(spec).unwrap();
        let set = PolicySet::new(
            vec![Arc::new(fail_closed("istio-egress", "broken", &spec))],
            "istio-system",
        );
        let attrs = RequestAttrs {
            source_principal: Some("cluster.local/ns/bookinfo/sa/productpage"),
            source_ip: "10.0.0.1".parse().unwrap(),
            remote_ip: "10.0.0.1".parse().unwrap(),
            destination: "240.240.0.2:80".parse().unwrap(),
            sni: None,
            http: None,
        };
        !set.evaluate(&target, &attrs).allowed
    }

    #[test]
    fn an_invalid_policy_denies_what_its_readable_target_refs_name() {
        let spec =
            "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}]
action: ALLOW
rules: [{to: [{operation: {methods: 42}}]}]
";
        assert!(denies(
            spec,
            target("istio-egress", "egress-waypoint", "httpbin.org")
        ));
        assert!(!denies(
            spec,
            target("istio-egress", "other-waypoint", "httpbin.org")
        ));
        let se = "targetRefs: [{kind: ServiceEntry, group: networking.istio.io, name: httpbin.org}]
action: BOGUS
";
        assert!(denies(
            se,
            target("istio-egress", "egress-waypoint", "httpbin.org")
        ));
        assert!(!denies(
            se,
            target("istio-egress", "egress-waypoint", "other.org")
        ));
    }

    #[test]
    fn unreadable_targets_deny_everything_of_the_namespace() {
        for spec in [
            "~",
            "[not, a, mapping]",
            "targetRefs: [{kind: Gateway, name: w, colour: red}]",
            "targetRefs: 7",
            "selector: {matchLabels: {a: b}}\ntargetRefs: [{kind: Gateway, name: w, group: gateway.networking.k8s.io}]",
        ] {
            assert!(
                denies(spec, target("istio-egress", "egress-waypoint", "httpbin.org")),
                "{spec}"
            );
            assert!(
                !denies(spec, target("elsewhere", "egress-waypoint", "httpbin.org")),
                "{spec}"
            );
        }
    }

    #[test]
    fn a_policy_that_targets_no_waypoint_denies_nothing_there() {
        for spec in [
            "selector: {matchLabels: {app: x}}\nrules: [{bad: 1}]",
            "action: ALLOW\nrules: [{bad: 1}]",
        ] {
            assert!(
                !denies(
                    spec,
                    target("istio-egress", "egress-waypoint", "httpbin.org")
                ),
                "{spec}"
            );
        }
    }
}

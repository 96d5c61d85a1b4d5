//! Invalid policies are refused with a message naming the policy and field.

use super::try_policy;
use crate::authz::{AuthorizationPolicySpec, PolicyTarget};

type Annotations = Vec<(&'static str, &'static str)>;

#[test]
fn invalid_policies_name_the_field() {
    // (spec, annotations, expected message)
    let cases: Vec<(&str, Annotations, &str)> = vec![
        ("action: CUSTOM\nprovider: {name: ext}\nrules: [{}]", vec![],
         "AuthorizationPolicy ns/p: spec.action: CUSTOM is not supported yet by egret (no external authorization providers); use ALLOW or DENY"),
        ("action: REJECT", vec![],
         "AuthorizationPolicy ns/p: spec.action: unknown action \"REJECT\" (expected ALLOW, DENY, AUDIT or CUSTOM)"),
        ("action: allow", vec![], "unknown action \"allow\""),
        ("provider: {name: ext}\nrules: [{}]", vec![], "AuthorizationPolicy ns/p: spec.provider: must not be set with action ALLOW"),
        ("action: DENY", vec![], "AuthorizationPolicy ns/p: spec.rules: DENY action without `rules`"),
        ("rules: [{from: [{source: {serviceAccounts: [a/b, 'c/*']}}]}]", vec![],
         "AuthorizationPolicy ns/p: spec.rules[0].from[0].source.serviceAccounts[1]: wildcards are not allowed"),
        ("rules: [{from: [{source: {notServiceAccounts: [a/b/c]}}]}]", vec![],
         "spec.rules[0].from[0].source.notServiceAccounts[0]: expected 'serviceAccount' or 'namespace/serviceAccount'"),
        ("rules: [{from: [{source: {serviceAccounts: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]}}]}]", vec![],
         "spec.rules[0].from[0].source.serviceAccounts: may not have more than 16 values, found 17"),
        ("rules: [{from: [{source: {serviceAccounts: [a/b], namespaces: [a]}}]}]", vec![],
         "spec.rules[0].from[0].source: cannot set serviceAccounts with namespaces or principals"),
        ("rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]", vec![],
         "spec.rules[0].from[0].source.ipBlocks[0]: bad CIDR range \"10.0.0.0/33\""),
        ("rules: [{from: [{source: {notRemoteIpBlocks: [not-an-ip]}}]}]", vec![],
         "spec.rules[0].from[0].source.notRemoteIpBlocks[0]: bad IP address \"not-an-ip\""),
        ("rules: [{to: [{operation: {ports: ['80', http]}}]}]", vec![],
         "AuthorizationPolicy ns/p: spec.rules[0].to[0].operation.ports[1]: bad port \"http\": must be a number"),
        ("rules: [{to: [{operation: {notPorts: ['70000']}}]}]", vec![], "notPorts[0]: bad port \"70000\""),
        ("rules: [{to: [{operation: {paths: ['/{**}/x/{*}']}}]}]", vec![], "paths[0]: invalid path template"),
        ("rules: [{from: [{source: {namespaces: ['a(*']}}]}]", vec![], "namespaces[0]: \"a(*\" does not make a valid regular expression"),
        ("rules: [{from: [{source: {notPrincipals: ['*/sa/[x']}}]}]", vec![], "notPrincipals[0]: \"*/sa/[x\" does not make a valid regular expression"),
        ("rules: [{to: [{operation: {methods: ['']}}]}]", vec![], "spec.rules[0].to[0].operation.methods[0]: empty value not allowed"),
        ("rules: [{to: [{operation: {}}]}]", vec![], "spec.rules[0].to[0].operation: must not be empty"),
        ("rules: [{to: [{}]}]", vec![], "spec.rules[0].to[0].operation: must be set"),
        ("rules: [{from: []}]", vec![], "spec.rules[0].from: must not be empty"),
        ("rules: [{from: [{source: {}}]}]", vec![], "spec.rules[0].from[0].source: must not be empty"),
        ("rules: [{when: [{key: request.color, values: [red]}]}]", vec![],
         "AuthorizationPolicy ns/p: spec.rules[0].when[0][request.color]: unknown attribute \"request.color\""),
        ("rules: [{when: [{key: 'request.headers[]', values: [x]}]}]", vec![], "should have the form request.headers[name]"),
        ("rules: [{when: [{key: destination.port, values: [eighty]}]}]", vec![], "bad port \"eighty\""),
        ("rules: [{when: [{key: source.ip, values: []}]}]", vec![], "at least one of `values` or `notValues` must be set"),
        ("rules: [{when: [{key: destination.namespace, values: [x]}]}]", vec![], "replaced by the policy's metadata.namespace"),
        ("rules: [{when: [{key: 'experimental.envoy.filters.a[b]', values: [x]}]}]", vec![], "not supported by egret"),
        ("rules: [{from: [{source: {trustDomains: ['a*b']}}]}]", vec![], "trustDomains[0]: a wildcard is only allowed once"),
        ("selector: {matchLabels: {app: x}}\ntargetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: w}]", vec![],
         "spec: only one of selector, targetRef or targetRefs can be set"),
        ("targetRefs: [{kind: Deployment, group: apps, name: w}]", vec![],
         "spec.targetRefs[0]: targetRef must be a gateway.networking.k8s.io Gateway or GatewayClass"),
        ("targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: w, namespace: other}]", vec![],
         "spec.targetRefs[0].namespace: must not be set; cross namespace referencing is not supported"),
        ("targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io}]", vec![], "spec.targetRefs[0].name: must be set"),
        ("rules: [{}]", vec![("istio.io/dry-run", "yes")], "metadata.annotations[istio.io/dry-run]: invalid boolean \"yes\""),
        ("action: AUDIT\nrules: [{}]", vec![("istio.io/dry-run", "true")], "dry-run only supports action ALLOW or DENY"),
    ];
    for (yaml, annotations, want) in cases {
        let err = try_policy("ns", "p", &annotations, yaml)
            .expect_err(yaml)
            .to_string();
        assert!(
            err.contains(want),
            "spec {yaml:?}\n got: {err}\nwant: {want}"
        );
        assert!(err.starts_with("AuthorizationPolicy ns/p: "), "{err}");
    }
}

#[test]
fn too_many_target_refs() {
    let refs: Vec<String> = (0..17)
        .map(|i| format!("{{kind: Gateway, group: gateway.networking.k8s.io, name: w{i}}}"))
        .collect();
    let err = try_policy(
        "ns",
        "p",
        &[],
        &format!("targetRefs: [{}]", refs.join(", ")),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.targetRefs: may not have more than 16 items, found 17"),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_rejected() {
    for yaml in [
        "rules: [{to: [{operation: {path: [/x]}}]}]",
        "rules: [{from: [{source: {principal: [x]}}]}]",
        "actions: DENY",
        "rules: [{when: [{key: source.ip, value: [x]}]}]",
    ] {
        assert!(
            serde_yaml::from_str::<AuthorizationPolicySpec>(yaml).is_err(),
            "{yaml}"
        );
    }
}

#[test]
fn rules_missing_empty_and_empty_rule_stay_distinct() {
    let missing: AuthorizationPolicySpec = serde_yaml::from_str("{}").unwrap();
    let empty: AuthorizationPolicySpec = serde_yaml::from_str("rules: []").unwrap();
    let one: AuthorizationPolicySpec = serde_yaml::from_str("rules: [{}]").unwrap();
    assert_eq!(missing.rules, None);
    assert_eq!(empty.rules, Some(vec![]));
    assert_eq!(one.rules.as_ref().map(Vec::len), Some(1));
    let spec_json: AuthorizationPolicySpec = serde_json::from_str(
        r#"{"action":"DENY","rules":[{"from":[{"source":{"ipBlocks":["1.2.3.4"]}}]}]}"#,
    )
    .unwrap();
    assert_eq!(spec_json.action.as_deref(), Some("DENY"));
}

#[test]
fn targets_are_recorded() {
    let p = try_policy(
        "istio-egress",
        "p",
        &[],
        "targetRef: {kind: ServiceEntry, group: networking.istio.io, name: httpbin.org}",
    )
    .unwrap();
    assert_eq!(
        p.targets(),
        &[PolicyTarget::ServiceEntry {
            namespace: "istio-egress".into(),
            name: "httpbin.org".into()
        }]
    );
    let p = try_policy(
        "istio-egress",
        "p",
        &[],
        "targetRefs: [{kind: Service, group: core, name: s}]",
    )
    .unwrap();
    assert_eq!(
        p.targets(),
        &[PolicyTarget::Service {
            namespace: "istio-egress".into(),
            name: "s".into()
        }]
    );
    let p = try_policy("istio-egress", "p", &[], "{}").unwrap();
    assert_eq!(p.targets(), &[PolicyTarget::NamespaceWide]);
}

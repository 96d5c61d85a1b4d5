//! HTTP-only attributes on TCP: ALLOW drops the whole rule (narrower), DENY and
//! AUDIT drop only the constraint (broader) — Istio's checkError.

use super::{policy, target, Req};
use crate::authz::{DecisionReason, PolicySet};

const GW: &str =
    "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}]\n";

#[test]
fn http_only_attributes_on_tcp() {
    // (case, action, rules, request, allowed)
    let cases: Vec<(&str, &str, &str, Req, bool)> = vec![
        (
            "allow paths: rule dropped",
            "ALLOW",
            "[{to: [{operation: {paths: [/get]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow paths: http still works",
            "ALLOW",
            "[{to: [{operation: {paths: [/get]}}]}]",
            Req::http(),
            true,
        ),
        (
            "allow hosts: rule dropped",
            "ALLOW",
            "[{to: [{operation: {hosts: [httpbin.org]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow methods: rule dropped",
            "ALLOW",
            "[{to: [{operation: {notMethods: [POST]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow requestPrincipals: rule dropped",
            "ALLOW",
            "[{from: [{source: {notRequestPrincipals: [x/y]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow header condition: rule dropped",
            "ALLOW",
            "[{when: [{key: 'request.headers[x]', notValues: [y]}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow claims condition: rule dropped",
            "ALLOW",
            "[{when: [{key: 'request.auth.claims[iss]', notValues: [y]}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow: other rule of the policy still applies",
            "ALLOW",
            "[{to: [{operation: {paths: [/get]}}]}, {to: [{operation: {ports: ['80']}}]}]",
            Req::tcp(),
            true,
        ),
        (
            "allow: tcp `to` next to an http `to` is dropped with its rule",
            "ALLOW",
            "[{to: [{operation: {ports: ['80']}}, {operation: {paths: [/x]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "allow: ports work on tcp",
            "ALLOW",
            "[{to: [{operation: {ports: ['80']}}]}]",
            Req::tcp(),
            true,
        ),
        (
            "allow: principals work on tcp",
            "ALLOW",
            "[{from: [{source: {namespaces: [bookinfo]}}]}]",
            Req::tcp(),
            true,
        ),
        (
            "deny paths: constraint dropped, denies all tcp",
            "DENY",
            "[{to: [{operation: {paths: [/admin]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "deny paths: http not matching passes",
            "DENY",
            "[{to: [{operation: {paths: [/admin]}}]}]",
            Req::http(),
            true,
        ),
        (
            "deny notPaths: dropped",
            "DENY",
            "[{to: [{operation: {notPaths: [/get]}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "deny methods+ports: port still checked",
            "DENY",
            "[{to: [{operation: {methods: [POST], ports: ['443']}}]}]",
            Req::tcp(),
            true,
        ),
        (
            "deny methods+ports: port matches",
            "DENY",
            "[{to: [{operation: {methods: [POST], ports: ['80']}}]}]",
            Req::tcp(),
            false,
        ),
        (
            "deny header condition: dropped",
            "DENY",
            "[{when: [{key: 'request.headers[x]', values: [y]}]}]",
            Req::tcp(),
            false,
        ),
        (
            "deny requestPrincipals next to namespaces",
            "DENY",
            "[{from: [{source: {requestPrincipals: ['*'], namespaces: [default]}}]}]",
            Req::tcp(),
            true,
        ),
    ];
    for (name, action, rules, req, allowed) in cases {
        let p = policy(
            "istio-egress",
            "p",
            &format!("{GW}action: {action}\nrules: {rules}"),
        );
        let d = PolicySet::new(vec![p], "istio-system").evaluate(&target(), &req.attrs());
        assert_eq!(d.allowed, allowed, "case {name:?}: {d:?}");
    }
}

#[test]
fn audit_on_tcp_is_broader() {
    let p = policy(
        "istio-egress",
        "audit-post",
        &format!("{GW}action: AUDIT\nrules: [{{to: [{{operation: {{methods: [POST]}}}}]}}]"),
    );
    let d = PolicySet::new(vec![p], "istio-system").evaluate(&target(), &Req::tcp().attrs());
    assert!(d.allowed);
    assert_eq!(d.reason, DecisionReason::NoPolicies);
    assert_eq!(d.audit.len(), 1);
}

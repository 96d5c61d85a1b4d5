//! The walkthrough's Step 4a manifest, byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{target, Req};
use crate::authz::{compile, AuthorizationPolicySpec, DecisionReason, PolicySet, DENY_BODY};
use crate::testing::manifests::STEP_4A_POLICY;

fn step_4a() -> PolicySet {
    let doc: serde_yaml::Value = serde_yaml::from_str(STEP_4A_POLICY).unwrap();
    let meta = &doc["metadata"];
    let spec: AuthorizationPolicySpec = serde_yaml::from_value(doc["spec"].clone()).unwrap();
    let p = compile(
        meta["namespace"].as_str().unwrap(),
        meta["name"].as_str().unwrap(),
        &BTreeMap::new(),
        &spec,
    )
    .unwrap();
    PolicySet::new(vec![Arc::new(p)], "istio-system")
}

#[test]
fn only_get_get_is_allowed() {
    let set = step_4a();
    let cases = [
        ("curl httpbin.org/get", Req::http(), true),
        (
            "curl httpbin.org/post",
            Req::http().method("POST").path("/post"),
            false,
        ),
        ("GET /post", Req::http().path("/post"), false),
        ("POST /get", Req::http().method("POST"), false),
        (
            "host case-insensitive",
            Req::http().authority("HTTPBIN.org"),
            true,
        ),
        // Istio compares hosts with :authority as sent: `httpbin.org` does not match
        // `httpbin.org:80` (users add `httpbin.org:*` for that).
        (
            "explicit port in Host",
            Req::http().authority("httpbin.org:80"),
            false,
        ),
        ("other host", Req::http().authority("example.com"), false),
        // HTTP-only rule in an ALLOW policy: dropped on TCP, so TCP is denied.
        ("tcp", Req::tcp(), false),
    ];
    for (name, req, allowed) in cases {
        let d = set.evaluate(&target(), &req.attrs());
        assert_eq!(d.allowed, allowed, "{name}: {d:?}");
        if allowed {
            assert_eq!(d.policy.unwrap().to_string(), "istio-egress/httpbin");
        } else {
            assert_eq!(d.reason, DecisionReason::NoAllowMatched);
        }
    }
}

#[test]
fn deleting_the_policy_restores_access() {
    let empty = PolicySet::new(vec![], "istio-system");
    let post = Req::http().method("POST").path("/post");
    assert!(!step_4a().evaluate(&target(), &post.attrs()).allowed);
    assert!(empty.evaluate(&target(), &post.attrs()).allowed);
}

#[test]
fn deny_body_is_nineteen_bytes() {
    assert_eq!(DENY_BODY.len(), 19);
}

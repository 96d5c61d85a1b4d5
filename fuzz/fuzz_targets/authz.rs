//! AuthorizationPolicy compile and evaluation: a policy (YAML spec) and a
//! request (method, path, host, one header), separated by NUL bytes.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use egret::authz::{compile, AuthorizationPolicySpec, HttpAttrs, PolicySet, RequestAttrs};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let yaml = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or("GET");
    let path = parts.next().unwrap_or("/");
    let authority = parts.next().unwrap_or("httpbin.org");
    let mut headers = HeaderMap::new();
    if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    let Ok(spec) = serde_yaml::from_str::<AuthorizationPolicySpec>(yaml) else {
        return;
    };
    let Ok(policy) = compile("istio-egress", "fuzz", &BTreeMap::new(), &spec) else {
        return;
    };
    let set = PolicySet::new(vec![Arc::new(policy)], "istio-system");
    let target = egret::testing::manifests::waypoint_target();
    for http in [
        Some(HttpAttrs {
            authority,
            method,
            path,
            headers: &headers,
        }),
        None,
    ] {
        let attrs = RequestAttrs {
            source_principal: Some("cluster.local/ns/bookinfo/sa/bookinfo-productpage"),
            source_ip: "10.0.74.45".parse().unwrap(),
            remote_ip: "10.0.74.45".parse().unwrap(),
            destination: "240.240.0.2:80".parse().unwrap(),
            sni: Some(authority),
            http,
        };
        let decision = set.evaluate(&target, &attrs);
        // A decision names its policy exactly when a policy decided.
        assert_eq!(
            decision.policy.is_some(),
            matches!(
                decision.reason,
                egret::authz::DecisionReason::DeniedBy | egret::authz::DecisionReason::AllowedBy
            )
        );
    }
});

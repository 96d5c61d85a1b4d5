//! Istio's decision order, AUDIT, dry-run, and which policies reach a waypoint.

use std::sync::Arc;

use super::{policy, target, try_policy, Req};
use crate::authz::{
    Action, AuthzCounts, AuthzStats, DecisionReason, GatewayKey, NamespacedName, PolicyDecision,
    PolicySet, TargetKey,
};

const GW: &str =
    "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}]\n";

fn decide(policies: Vec<Arc<crate::authz::CompiledPolicy>>, req: &Req) -> PolicyDecision {
    PolicySet::new(policies, "istio-system").evaluate(&target(), &req.attrs())
}

fn dry(name: &str, yaml: &str) -> Arc<crate::authz::CompiledPolicy> {
    Arc::new(try_policy("istio-egress", name, &[("istio.io/dry-run", "true")], yaml).unwrap())
}

/// (allowed, deciding policy name, reason)
fn summary(d: &PolicyDecision) -> (bool, Option<String>, DecisionReason) {
    (
        d.allowed,
        d.policy.as_ref().map(|p| p.name().to_string()),
        d.reason,
    )
}

/// (name, policies, request, (allowed, deciding policy, reason))
type Case<'a> = (
    &'a str,
    Vec<Arc<crate::authz::CompiledPolicy>>,
    &'a Req,
    (bool, Option<&'a str>, DecisionReason),
);

#[test]
fn decision_order() {
    use DecisionReason::*;
    let allow_all = || policy("istio-egress", "allow-all", &format!("{GW}rules: [{{}}]"));
    let allow_nothing = || policy("istio-egress", "allow-nothing", GW);
    let allow_empty_list = || policy("istio-egress", "allow-empty", &format!("{GW}rules: []"));
    let allow_get = || {
        policy(
            "istio-egress",
            "allow-get",
            &format!("{GW}rules: [{{to: [{{operation: {{methods: [GET]}}}}]}}]"),
        )
    };
    let deny_post = || {
        policy(
            "istio-egress",
            "deny-post",
            &format!("{GW}action: DENY\nrules: [{{to: [{{operation: {{paths: [/post]}}}}]}}]"),
        )
    };
    let audit_all = || {
        policy(
            "istio-egress",
            "audit-all",
            &format!("{GW}action: AUDIT\nrules: [{{}}]"),
        )
    };
    let get = Req::http();
    let post = Req::http().method("POST").path("/post");

    let cases: Vec<Case> = vec![
        ("no policies allow", vec![], &get, (true, None, NoPolicies)),
        (
            "spec {} allows nothing",
            vec![allow_nothing()],
            &get,
            (false, None, NoAllowMatched),
        ),
        (
            "rules [] allows nothing",
            vec![allow_empty_list()],
            &get,
            (false, None, NoAllowMatched),
        ),
        (
            "rules [{}] allows all",
            vec![allow_all()],
            &post,
            (true, Some("allow-all"), AllowedBy),
        ),
        (
            "allow matches",
            vec![allow_get()],
            &get,
            (true, Some("allow-get"), AllowedBy),
        ),
        (
            "allow does not match",
            vec![allow_get()],
            &post,
            (false, None, NoAllowMatched),
        ),
        (
            "deny beats allow",
            vec![allow_all(), deny_post()],
            &post,
            (false, Some("deny-post"), DeniedBy),
        ),
        (
            "deny not matching",
            vec![allow_all(), deny_post()],
            &get,
            (true, Some("allow-all"), AllowedBy),
        ),
        (
            "deny alone, no allow",
            vec![deny_post()],
            &get,
            (true, None, NoPolicies),
        ),
        (
            "audit changes nothing",
            vec![audit_all()],
            &post,
            (true, None, NoPolicies),
        ),
        (
            "audit with allow-nothing",
            vec![audit_all(), allow_nothing()],
            &get,
            (false, None, NoAllowMatched),
        ),
        (
            "any allow suffices",
            vec![allow_nothing(), allow_get()],
            &get,
            (true, Some("allow-get"), AllowedBy),
        ),
    ];
    for (name, policies, req, want) in cases {
        let d = decide(policies, req);
        let want = (want.0, want.1.map(str::to_string), want.2);
        assert_eq!(summary(&d), want, "case {name:?}");
    }
}

#[test]
fn audit_is_reported() {
    let audit = policy(
        "istio-egress",
        "audit-post",
        &format!("{GW}action: AUDIT\nrules: [{{to: [{{operation: {{methods: [POST]}}}}]}}]"),
    );
    let d = decide(vec![audit.clone()], &Req::http().method("POST"));
    assert!(d.allowed);
    assert_eq!(d.audit, vec![audit.policy_ref().clone()]);
    assert_eq!(d.audit[0].action(), Action::Audit);
    let d = decide(vec![audit], &Req::http());
    assert!(d.audit.is_empty());
}

#[test]
fn dry_run_is_reported_not_enforced() {
    let deny = dry("dry-deny", &format!("{GW}action: DENY\nrules: [{{}}]"));
    let allow_nothing = dry("dry-allow-nothing", GW);
    let allow_all = dry("dry-allow-all", &format!("{GW}rules: [{{}}]"));

    let d = decide(vec![deny.clone()], &Req::http());
    assert_eq!(summary(&d), (true, None, DecisionReason::NoPolicies));
    assert_eq!(d.dry_run, vec![(deny.policy_ref().clone(), false)]);

    // A dry-run ALLOW does not count as "an ALLOW policy applies".
    let d = decide(vec![allow_nothing.clone(), allow_all.clone()], &Req::http());
    assert_eq!(summary(&d), (true, None, DecisionReason::NoPolicies));
    assert_eq!(
        d.dry_run,
        vec![
            (allow_all.policy_ref().clone(), true),
            (allow_nothing.policy_ref().clone(), false)
        ]
    );

    // Enforced policies still decide while dry-run ones are reported.
    let enforced = policy(
        "istio-egress",
        "deny-all",
        &format!("{GW}action: DENY\nrules: [{{}}]"),
    );
    let d = decide(vec![enforced, allow_all.clone()], &Req::http());
    assert_eq!(
        summary(&d),
        (false, Some("deny-all".into()), DecisionReason::DeniedBy)
    );
    assert_eq!(d.dry_run, vec![(allow_all.policy_ref().clone(), true)]);

    // `istio.io/dry-run: "false"` enforces.
    let off =
        Arc::new(try_policy("istio-egress", "off", &[("istio.io/dry-run", "false")], GW).unwrap());
    assert!(!off.dry_run());
    assert!(!decide(vec![off], &Req::http()).allowed);
}

#[test]
fn which_policies_apply_at_the_waypoint() {
    let allow_nothing =
        |ns: &str, targets: &str| policy(ns, "p", &format!("targetRefs: [{targets}]"));
    let cases = [
        (
            "own gateway",
            "istio-egress",
            "{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}",
            true,
        ),
        (
            "other gateway",
            "istio-egress",
            "{kind: Gateway, group: gateway.networking.k8s.io, name: other}",
            false,
        ),
        (
            "gateway name in other namespace",
            "bookinfo",
            "{kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}",
            false,
        ),
        (
            "gateway class",
            "istio-system",
            "{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}",
            true,
        ),
        (
            "gateway class from outside the root namespace",
            "istio-egress",
            "{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}",
            false,
        ),
        (
            "other gateway class",
            "istio-system",
            "{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio}",
            false,
        ),
        (
            "service entry",
            "istio-egress",
            "{kind: ServiceEntry, group: networking.istio.io, name: httpbin.org}",
            true,
        ),
        (
            "other service entry",
            "istio-egress",
            "{kind: ServiceEntry, group: networking.istio.io, name: example.com}",
            false,
        ),
        (
            "service entry name in other namespace",
            "bookinfo",
            "{kind: ServiceEntry, group: networking.istio.io, name: httpbin.org}",
            false,
        ),
        (
            "service of the same name is not the service entry",
            "istio-egress",
            "{kind: Service, group: '', name: httpbin.org}",
            false,
        ),
    ];
    for (name, ns, targets, applies) in cases {
        let d = decide(vec![allow_nothing(ns, targets)], &Req::http());
        assert_eq!(!d.allowed, applies, "case {name:?}");
    }

    // A Service target applies when the request is for that Service.
    let svc = allow_nothing("default", "{kind: Service, name: reviews}");
    let key = TargetKey {
        service_entry: None,
        service: Some(NamespacedName {
            namespace: "default",
            name: "reviews",
        }),
        ..target()
    };
    let set = PolicySet::new(vec![svc], "istio-system");
    assert!(!set.evaluate(&key, &Req::http().attrs()).allowed);
    let other_gw = TargetKey {
        gateway: GatewayKey {
            namespace: "x",
            name: "y",
            class: "istio-waypoint",
        },
        service_entry: None,
        service: None,
    };
    assert!(set.evaluate(&other_gw, &Req::http().attrs()).allowed);
}

#[test]
fn selector_and_namespace_wide_policies_are_warned_and_skipped() {
    let selector = policy(
        "istio-egress",
        "sel",
        "selector: {matchLabels: {app: httpbin}}",
    );
    let wide = policy("istio-egress", "wide", "{}");
    let set = PolicySet::new(vec![selector, wide], "istio-system");
    assert_eq!(set.len(), 2);
    assert!(set.evaluate(&target(), &Req::http().attrs()).allowed);
    assert_eq!(set.warnings().len(), 2);
    assert!(set.warnings()[0]
        .contains("istio-egress/sel: selector policies do not apply at a waypoint"));
    assert!(set.warnings()[1].contains("istio-egress/wide"));
}

#[test]
fn gateway_class_policies_outside_the_root_namespace_are_warned_and_skipped() {
    let deny_all = |ns: &str| {
        policy(
            ns,
            "class-wide",
            "targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]\n\
             action: DENY\nrules: [{}]",
        )
    };
    let set = PolicySet::new(vec![deny_all("istio-egress")], "istio-system");
    assert!(set.evaluate(&target(), &Req::http().attrs()).allowed);
    assert_eq!(set.warnings().len(), 1);
    assert!(
        set.warnings()[0].contains("must be in the root namespace `istio-system`"),
        "{:?}",
        set.warnings()
    );
    let set = PolicySet::new(vec![deny_all("istio-system")], "istio-system");
    assert!(!set.evaluate(&target(), &Req::http().attrs()).allowed);
    assert!(set.warnings().is_empty());
}

#[test]
fn policy_on_gateway_and_service_entry_reported_once() {
    let both = policy(
        "istio-egress",
        "both",
        "action: AUDIT\nrules: [{}]\ntargetRefs:\n- {kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}\n- {kind: ServiceEntry, group: networking.istio.io, name: httpbin.org}",
    );
    let d = decide(vec![both], &Req::http());
    assert_eq!(d.audit.len(), 1);
}

#[test]
fn first_policy_by_name_is_reported() {
    let deny = |name: &str| {
        policy(
            "istio-egress",
            name,
            &format!("{GW}action: DENY\nrules: [{{}}]"),
        )
    };
    let d = decide(vec![deny("b"), deny("a")], &Req::http());
    assert_eq!(d.policy.unwrap().to_string(), "istio-egress/a");
}

#[test]
fn stats_count_by_reason() {
    let stats = AuthzStats::default();
    let deny = policy(
        "istio-egress",
        "deny-post",
        &format!("{GW}action: DENY\nrules: [{{to: [{{operation: {{methods: [POST]}}}}]}}]"),
    );
    let audit = policy(
        "istio-egress",
        "audit",
        &format!("{GW}action: AUDIT\nrules: [{{}}]"),
    );
    let would_deny = dry("dry", &format!("{GW}action: DENY\nrules: [{{}}]"));
    let set = PolicySet::new(vec![deny, audit, would_deny], "istio-system");
    for req in [Req::http(), Req::http().method("POST"), Req::http()] {
        stats.record(&set.evaluate(&target(), &req.attrs()));
    }
    assert_eq!(
        stats.snapshot(),
        AuthzCounts {
            denied_by_policy: 1,
            no_policies: 2,
            audited: 3,
            dry_run_would_deny: 3,
            ..Default::default()
        }
    );
}

use std::time::SystemTime;

use serde_json::json;

use super::*;
use crate::kube::waypoints::render::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::testing::waypoints::template;

fn gateway(class: &str) -> Arc<DynamicObject> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "egress-waypoint", "namespace": "istio-egress", "uid": "gw-uid", "generation": 1},
            "spec": {"gatewayClassName": class, "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}
        }))
        .unwrap(),
    )
}

fn managed(kind: &str) -> serde_json::Value {
    json!({"name": "egress-waypoint", "namespace": "istio-egress",
           "labels": {GATEWAY_NAME_LABEL: "egress-waypoint", MANAGED_BY_LABEL: MANAGED_BY},
           "annotations": {"kind": kind}})
}

fn run(view: &View) -> Vec<PlannedAction> {
    plan(view, &template(), "ROOTS", SystemTime::now(), "T0")
}

#[test]
fn a_new_waypoint_gateway_gets_its_objects_identity_and_pending_status() {
    let view = View {
        gateways: vec![gateway("istio-waypoint")],
        complete: true,
        ..View::default()
    };
    let actions = run(&view);
    let applied: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            PlannedAction::Apply(d) => Some(d.resource),
            _ => None,
        })
        .collect();
    assert_eq!(
        applied,
        [
            "serviceaccounts",
            "clusterrolebindings",
            "rolebindings",
            "services",
            "deployments",
            "poddisruptionbudgets"
        ]
    );
    assert!(actions.iter().any(|a| matches!(
        a,
        PlannedAction::Issue {
            reason: "no identity Secret yet",
            ..
        }
    )));
    let status = actions
        .iter()
        .find_map(|a| match a {
            PlannedAction::Status { body, .. } => Some(body),
            _ => None,
        })
        .unwrap();
    assert_eq!(status["status"]["conditions"][1]["reason"], "Pending");
    assert!(!actions
        .iter()
        .any(|a| matches!(a, PlannedAction::Delete { .. })));
}

#[test]
fn a_ready_deployment_and_service_program_the_gateway() {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": managed("Deployment"),
        "spec": {"replicas": 2, "selector": {}, "template": {}},
        "status": {"availableReplicas": 1}
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": managed("Service"),
        "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}
    }))
    .unwrap();
    let view = View {
        gateways: vec![gateway("istio-waypoint")],
        deployments: vec![Arc::new(deployment)],
        services: vec![Arc::new(service)],
        complete: true,
        ..View::default()
    };
    let status = run(&view)
        .into_iter()
        .find_map(|a| match a {
            PlannedAction::Status { body, .. } => Some(body),
            _ => None,
        })
        .unwrap();
    assert_eq!(status["status"]["conditions"][1]["status"], "True");
    assert_eq!(status["status"]["addresses"][0]["value"], "10.96.0.10");
}

#[test]
fn objects_of_a_gateway_that_is_no_waypoint_are_deleted_once_lists_are_complete() {
    let deployment: Deployment =
        serde_json::from_value(json!({"metadata": managed("Deployment")})).unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "egret-waypoint:istio-egress:egress-waypoint",
                     "labels": {GATEWAY_NAME_LABEL: "egress-waypoint", GATEWAY_NAMESPACE_LABEL: "istio-egress", MANAGED_BY_LABEL: MANAGED_BY}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "egret-waypoint"}
    }))
    .unwrap();
    let role_binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "egret-waypoint:istio-egress:egress-waypoint", "namespace": "istio-system",
                     "labels": {GATEWAY_NAME_LABEL: "egress-waypoint", GATEWAY_NAMESPACE_LABEL: "istio-egress", MANAGED_BY_LABEL: MANAGED_BY}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "egret-mesh-config"}
    }))
    .unwrap();
    let mut view = View {
        gateways: vec![gateway("istio")],
        deployments: vec![Arc::new(deployment)],
        bindings: vec![Arc::new(binding)],
        role_bindings: vec![Arc::new(role_binding)],
        complete: false,
        ..View::default()
    };
    assert!(
        run(&view).is_empty(),
        "nothing is deleted before every list is in"
    );
    view.complete = true;
    let deleted: Vec<(&str, String)> = run(&view)
        .into_iter()
        .filter_map(|a| match a {
            PlannedAction::Delete { resource, name, .. } => Some((resource, name)),
            _ => None,
        })
        .collect();
    for (resource, name) in [
        ("deployments", "egress-waypoint"),
        ("services", "egress-waypoint"),
        ("poddisruptionbudgets", "egress-waypoint"),
        ("serviceaccounts", "egress-waypoint"),
        ("secrets", "egress-waypoint-identity"),
        (
            "clusterrolebindings",
            "egret-waypoint:istio-egress:egress-waypoint",
        ),
    ] {
        assert!(
            deleted.contains(&(resource, name.to_string())),
            "{resource} {name}: {deleted:?}"
        );
    }
}

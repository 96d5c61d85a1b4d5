//! The waypoint controller's inputs: the walkthrough's Gateway and a
//! template.

use crate::kube::waypoints::render::{GatewayRef, WaypointTemplate};

/// The walkthrough's waypoint Gateway (uid `u-1`).
pub fn gw() -> GatewayRef {
    GatewayRef {
        namespace: "istio-egress".into(),
        name: "egress-waypoint".into(),
        uid: "u-1".into(),
    }
}

/// A template with the defaults `egret run` gives.
pub fn template() -> WaypointTemplate {
    WaypointTemplate {
        image: "egret:dev".into(),
        pull_policy: "IfNotPresent".into(),
        trust_domain: "cluster.local".into(),
        replicas: 2,
        cluster_role: "egret-waypoint".into(),
        mesh_config_role: "egret-mesh-config".into(),
        log: "info".into(),
    }
}

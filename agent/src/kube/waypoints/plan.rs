//! What the controller does in one pass, decided from what the API holds
//! (pure: the controller carries it out). For each Gateway of class
//! `istio-waypoint`: its objects applied, its identity Secret issued when
//! due, its status brought up to date. What egret made for a Gateway that
//! is gone, or no longer a waypoint, is deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::core::DynamicObject;
use kube::ResourceExt;

use super::identity::reissue_reason;
use super::render::{
    objects, Desired, GatewayRef, WaypointTemplate, GATEWAY_NAMESPACE_LABEL, GATEWAY_NAME_LABEL,
    MESH_CONFIG_NAMESPACE,
};
use super::status;
use crate::config::kinds::gateway::WAYPOINT_CLASS;
use crate::identity::Identity;

/// What the API holds that the controller looks at.
#[derive(Default)]
pub struct View {
    /// Every Gateway.
    pub gateways: Vec<Arc<DynamicObject>>,
    /// Every Secret the config source watches (identity Secrets among them).
    pub secrets: Vec<Arc<DynamicObject>>,
    /// Deployments egret manages.
    pub deployments: Vec<Arc<Deployment>>,
    /// Services egret manages.
    pub services: Vec<Arc<Service>>,
    /// ClusterRoleBindings egret manages.
    pub bindings: Vec<Arc<ClusterRoleBinding>>,
    /// RoleBindings egret manages in istiod's namespace.
    pub role_bindings: Vec<Arc<RoleBinding>>,
    /// Every list above is complete (its watch has listed once). Nothing
    /// is deleted before: a Gateway not listed yet is not a deleted one.
    pub complete: bool,
}

/// One thing to do.
#[derive(Clone, Debug, PartialEq)]
pub enum PlannedAction {
    /// Create or update (server-side apply).
    Apply(Desired),
    /// Issue the waypoint's certificate into its identity Secret.
    Issue {
        /// The Gateway.
        gateway: GatewayRef,
        /// Why now.
        reason: &'static str,
    },
    /// Merge-patch the Gateway's status.
    Status {
        /// The Gateway.
        gateway: GatewayRef,
        /// `{"status": …}`.
        body: serde_json::Value,
    },
    /// Delete an object (absent ones are fine).
    Delete {
        /// Plural resource.
        resource: &'static str,
        /// Namespace (empty: cluster-scoped).
        namespace: String,
        /// Name.
        name: String,
    },
}

/// The actions for `view`.
pub fn plan(
    view: &View,
    template: &WaypointTemplate,
    roots_pem: &str,
    now: SystemTime,
    now_text: &str,
) -> Vec<PlannedAction> {
    let mut actions = Vec::new();
    let mut waypoints = HashSet::new();
    for gw in &view.gateways {
        let Some(r) = waypoint_of(gw) else { continue };
        waypoints.insert((r.namespace.clone(), r.name.clone()));
        actions.extend(objects(&r, template).into_iter().map(PlannedAction::Apply));
        let identity = Identity {
            trust_domain: template.trust_domain.clone(),
            namespace: r.namespace.clone(),
            service_account: r.name.clone(),
        };
        let secret = view.secrets.iter().find(|s| {
            s.namespace().as_deref() == Some(&r.namespace) && s.name_any() == r.identity_secret()
        });
        if let Some(reason) = reissue_reason(secret.map(|s| &**s), &identity, roots_pem, now) {
            actions.push(PlannedAction::Issue {
                gateway: r.clone(),
                reason,
            });
        }
        let owned = |ns: Option<String>, name: String| {
            ns.as_deref() == Some(&r.namespace) && name == r.name
        };
        let deployment = view
            .deployments
            .iter()
            .find(|d| owned(d.namespace(), d.name_any()));
        let service = view
            .services
            .iter()
            .find(|s| owned(s.namespace(), s.name_any()));
        let generation = gw.metadata.generation.unwrap_or(0);
        let wanted = status::wanted(
            &r,
            generation,
            deployment.map(|d| &**d),
            service.map(|s| &**s),
            now_text,
        );
        let current = gw.data.get("status").cloned().unwrap_or_default();
        if let Some(body) = status::patch(&current, wanted) {
            actions.push(PlannedAction::Status { gateway: r, body });
        }
    }
    if view.complete {
        actions.extend(leftovers(view, &waypoints));
    }
    actions
}

/// The Gateway as a waypoint egret runs, unless it is another class or
/// being deleted.
fn waypoint_of(gw: &DynamicObject) -> Option<GatewayRef> {
    let class = gw.data.get("spec")?.get("gatewayClassName")?.as_str()?;
    if class != WAYPOINT_CLASS || gw.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some(GatewayRef {
        namespace: gw.namespace()?,
        name: gw.name_any(),
        uid: gw.uid()?,
    })
}

/// Deletes for what egret made for Gateways that are no waypoints now.
/// The API's garbage collector removes the objects in a deleted Gateway's
/// namespace too; the bindings live elsewhere and only egret removes them.
fn leftovers(view: &View, waypoints: &HashSet<(String, String)>) -> Vec<PlannedAction> {
    let mut gone: Vec<(String, String)> = Vec::new();
    let deployments = view
        .deployments
        .iter()
        .map(|d| (d.namespace(), d.labels().get(GATEWAY_NAME_LABEL).cloned()));
    let services = view
        .services
        .iter()
        .map(|s| (s.namespace(), s.labels().get(GATEWAY_NAME_LABEL).cloned()));
    for (ns, name) in deployments.chain(services) {
        if let (Some(ns), Some(name)) = (ns, name) {
            let key = (ns, name);
            if !waypoints.contains(&key) && !gone.contains(&key) {
                gone.push(key);
            }
        }
    }
    let mut actions = Vec::new();
    for (namespace, name) in gone {
        let r = GatewayRef {
            namespace: namespace.clone(),
            name: name.clone(),
            uid: String::new(),
        };
        for (resource, object) in [
            ("deployments", name.clone()),
            ("services", name.clone()),
            ("poddisruptionbudgets", name.clone()),
            ("serviceaccounts", name.clone()),
            ("secrets", r.identity_secret()),
        ] {
            actions.push(PlannedAction::Delete {
                resource,
                namespace: namespace.clone(),
                name: object,
            });
        }
    }
    let cluster = view
        .bindings
        .iter()
        .map(|b| ("clusterrolebindings", "", b.labels(), b.name_any()));
    let mesh = view.role_bindings.iter().map(|b| {
        (
            "rolebindings",
            MESH_CONFIG_NAMESPACE,
            b.labels(),
            b.name_any(),
        )
    });
    for (resource, namespace, labels, name) in cluster.chain(mesh) {
        let key = (
            labels
                .get(GATEWAY_NAMESPACE_LABEL)
                .cloned()
                .unwrap_or_default(),
            labels.get(GATEWAY_NAME_LABEL).cloned().unwrap_or_default(),
        );
        if !waypoints.contains(&key) {
            actions.push(PlannedAction::Delete {
                resource,
                namespace: namespace.to_string(),
                name,
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests;

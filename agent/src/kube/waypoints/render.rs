//! The objects that run one waypoint Gateway, as the controller applies
//! them: a ServiceAccount named after the Gateway (its SPIFFE identity, as
//! Istio names waypoint accounts), a Deployment running `egret waypoint`
//! with that identity's certificate from a Secret, a Service in front of
//! it (HBONE on 15008), a PodDisruptionBudget, a ClusterRoleBinding that
//! lets the waypoint read the config kinds and a RoleBinding that lets it
//! read istiod's MeshConfig. What lives in the Gateway's namespace is owned
//! by the Gateway, so deleting it removes them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};

pub use crate::config::kinds::config_map::MESH_CONFIG_NAMESPACE;

/// Label naming the Gateway a pod or object belongs to (Gateway API's).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Label naming the Gateway's namespace on the cluster-scoped binding.
pub const GATEWAY_NAMESPACE_LABEL: &str = "egret.io/gateway-namespace";
/// Label marking what egret manages, and its value.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "egret";
/// Where the identity Secret is mounted in the waypoint container.
pub const IDENTITY_MOUNT: &str = "/var/run/secrets/egret/identity";
/// The waypoint's admin port: readiness (`/healthz/ready`) and metrics.
pub const ADMIN_PORT: u16 = 15021;
/// HBONE.
pub const HBONE_PORT: u16 = crate::hbone::HBONE_PORT;

/// How waypoint Deployments are made (from the agent's flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaypointTemplate {
    /// Container image (the agent's own).
    pub image: String,
    /// `imagePullPolicy`.
    pub pull_policy: String,
    /// Trust domain of the waypoint's identity and its peers.
    pub trust_domain: String,
    /// Replicas: two, so the PodDisruptionBudget (one may be evicted at a
    /// time) never blocks a node drain.
    pub replicas: i32,
    /// The ClusterRole that lets a waypoint read the config kinds.
    pub cluster_role: String,
    /// The Role (in istiod's namespace) that lets it read the MeshConfig.
    pub mesh_config_role: String,
    /// Log filter of the waypoint.
    pub log: String,
}

/// The Gateway a waypoint's objects are rendered for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRef {
    /// Namespace.
    pub namespace: String,
    /// Name (also the Deployment's, Service's and ServiceAccount's).
    pub name: String,
    /// uid, for ownerReferences.
    pub uid: String,
}

impl GatewayRef {
    /// The identity Secret's name.
    pub fn identity_secret(&self) -> String {
        format!("{}-identity", self.name)
    }

    /// The name of its bindings: the ClusterRoleBinding (cluster-scoped)
    /// and the RoleBinding in istiod's namespace (both name the Gateway's
    /// namespace).
    pub fn binding(&self) -> String {
        format!("egret-waypoint:{}:{}", self.namespace, self.name)
    }

    fn owner(&self) -> Value {
        json!([{
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "name": self.name,
            "uid": self.uid,
            "controller": true,
        }])
    }

    fn labels(&self) -> Value {
        json!({ GATEWAY_NAME_LABEL: self.name, MANAGED_BY_LABEL: MANAGED_BY })
    }

    fn metadata(&self, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(),
            "ownerReferences": self.owner(),
        })
    }
}

/// One object to apply: its resource (plural) and body.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Plural resource, e.g. `deployments`.
    pub resource: &'static str,
    /// Namespace (empty: cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The full object (apiVersion, kind, metadata, spec).
    pub body: Value,
}

/// Everything but the identity Secret, in the order they are applied.
pub fn objects(gw: &GatewayRef, t: &WaypointTemplate) -> Vec<Desired> {
    let desired = |resource, namespace: &str, name: &str, body| Desired {
        resource,
        namespace: namespace.to_string(),
        name: name.to_string(),
        body,
    };
    vec![
        desired(
            "serviceaccounts",
            &gw.namespace,
            &gw.name,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": gw.metadata(&gw.name)}),
        ),
        desired("clusterrolebindings", "", &gw.binding(), binding(gw, t)),
        desired(
            "rolebindings",
            MESH_CONFIG_NAMESPACE,
            &gw.binding(),
            mesh_config_binding(gw, t),
        ),
        desired("services", &gw.namespace, &gw.name, service(gw)),
        desired("deployments", &gw.namespace, &gw.name, deployment(gw, t)),
        desired(
            "poddisruptionbudgets",
            &gw.namespace,
            &gw.name,
            json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": gw.metadata(&gw.name),
                "spec": {
                    "maxUnavailable": 1,
                    "selector": {"matchLabels": {GATEWAY_NAME_LABEL: gw.name}},
                },
            }),
        ),
    ]
}

/// Metadata of a binding outside the Gateway's namespace: the Gateway
/// cannot own it, so the controller deletes it itself, found by these labels.
fn binding_metadata(gw: &GatewayRef, namespace: Option<&str>) -> Value {
    let mut meta = json!({
        "name": gw.binding(),
        "labels": {
            GATEWAY_NAME_LABEL: gw.name,
            GATEWAY_NAMESPACE_LABEL: gw.namespace,
            MANAGED_BY_LABEL: MANAGED_BY,
        },
    });
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    meta
}

fn binding(gw: &GatewayRef, t: &WaypointTemplate) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": binding_metadata(gw, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": t.cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": gw.name, "namespace": gw.namespace}],
    })
}

/// The waypoint runs the same L7 rules as the agents, so it reads the same
/// MeshConfig (path normalization, outbound policy).
fn mesh_config_binding(gw: &GatewayRef, t: &WaypointTemplate) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": binding_metadata(gw, Some(MESH_CONFIG_NAMESPACE)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": t.mesh_config_role},
        "subjects": [{"kind": "ServiceAccount", "name": gw.name, "namespace": gw.namespace}],
    })
}

fn service(gw: &GatewayRef) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": gw.metadata(&gw.name),
        "spec": {
            "type": "ClusterIP",
            "ipFamilyPolicy": "PreferDualStack",
            "selector": {GATEWAY_NAME_LABEL: gw.name},
            "ports": [{"name": "mesh", "port": HBONE_PORT, "targetPort": HBONE_PORT, "protocol": "TCP"}],
        },
    })
}

/// The `egret waypoint` arguments the Deployment runs with.
pub fn waypoint_args(gw: &GatewayRef, t: &WaypointTemplate) -> Vec<String> {
    vec![
        "--config-dir=/var/lib/egret".into(),
        "waypoint".into(),
        "--kubernetes".into(),
        format!("--name={}/{}", gw.namespace, gw.name),
        format!("--trust-domain={}", t.trust_domain),
        format!("--cert-chain={IDENTITY_MOUNT}/tls.crt"),
        format!("--key={IDENTITY_MOUNT}/tls.key"),
        format!("--ca-bundle={IDENTITY_MOUNT}/ca.crt"),
        format!("--admin=[::]:{ADMIN_PORT}"),
        format!("--log={}", t.log),
    ]
}

/// Kubernetes' default, written out: the waypoint drains for
/// `--drain-timeout` (5 s by default) and exits well before the kubelet's
/// SIGKILL.
const TERMINATION_GRACE_SECONDS: u64 = 30;

fn deployment(gw: &GatewayRef, t: &WaypointTemplate) -> Value {
    let mut pod_labels = gw.labels();
    // Waypoint pods are never captured themselves (as Istio labels them).
    pod_labels["istio.io/dataplane-mode"] = json!("none");
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": gw.metadata(&gw.name),
        "spec": {
            "replicas": t.replicas,
            "selector": {"matchLabels": {GATEWAY_NAME_LABEL: gw.name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": gw.name,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {GATEWAY_NAME_LABEL: gw.name}},
                        },
                    }]}},
                    "containers": [{
                        "name": "waypoint",
                        "image": t.image,
                        "imagePullPolicy": t.pull_policy,
                        "args": waypoint_args(gw, t),
                        "env": [
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        ],
                        "ports": [
                            {"name": "mesh", "containerPort": HBONE_PORT, "protocol": "TCP"},
                            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz/ready", "port": ADMIN_PORT},
                            "periodSeconds": 5,
                            "failureThreshold": 3,
                        },
                        "livenessProbe": {
                            "tcpSocket": {"port": ADMIN_PORT},
                            "initialDelaySeconds": 5,
                            "periodSeconds": 10,
                            "failureThreshold": 3,
                        },
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 1337,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        "volumeMounts": [
                            {"name": "identity", "mountPath": IDENTITY_MOUNT, "readOnly": true},
                            {"name": "state", "mountPath": "/var/lib/egret"},
                        ],
                    }],
                    "volumes": [
                        {"name": "identity", "secret": {"secretName": gw.identity_secret()}},
                        {"name": "state", "emptyDir": {}},
                    ],
                },
            },
        },
    })
}

/// The identity Secret: the waypoint's certificate chain, key and roots,
/// under the `kubernetes.io/tls` keys.
pub fn identity_secret(gw: &GatewayRef, chain: &str, key: &str, roots: &str) -> Desired {
    let data: BTreeMap<&str, String> = [("tls.crt", chain), ("tls.key", key), ("ca.crt", roots)]
        .into_iter()
        .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
        .collect();
    Desired {
        resource: "secrets",
        namespace: gw.namespace.clone(),
        name: gw.identity_secret(),
        body: json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": gw.metadata(&gw.identity_secret()),
            "type": "kubernetes.io/tls",
            "data": data,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::waypoints::{gw, template};

    #[test]
    fn deployment_runs_egret_waypoint_as_the_gateway() {
        let all = objects(&gw(), &template());
        let d = &all
            .iter()
            .find(|d| d.resource == "deployments")
            .unwrap()
            .body;
        assert_eq!(d["metadata"]["name"], "egress-waypoint");
        assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "Gateway");
        assert_eq!(d["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "egress-waypoint");
        // The drain ends well before the kubelet's SIGKILL.
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        let drain = crate::net::drain::DEFAULT_DRAIN_TIMEOUT.as_secs();
        assert!(grace >= drain + 5, "grace {grace} s, drain {drain} s");
        let c = &pod["containers"][0];
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.contains(&"waypoint") && args.contains(&"--kubernetes"),
            "{args:?}"
        );
        assert!(
            args.contains(&"--name=istio-egress/egress-waypoint"),
            "{args:?}"
        );
        assert!(
            args.contains(&"--cert-chain=/var/run/secrets/egret/identity/tls.crt"),
            "{args:?}"
        );
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz/ready");
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], ADMIN_PORT);
        assert_eq!(
            pod["volumes"][0]["secret"]["secretName"],
            "egress-waypoint-identity"
        );
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"]["istio.io/dataplane-mode"],
            "none"
        );
        // The PDB leaves one replica evictable at a time.
        let pdb = &all
            .iter()
            .find(|d| d.resource == "poddisruptionbudgets")
            .unwrap()
            .body;
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        assert!(d["spec"]["replicas"].as_i64().unwrap() > 1);
    }

    #[test]
    fn service_and_binding() {
        let all = objects(&gw(), &template());
        let s = &all.iter().find(|d| d.resource == "services").unwrap().body;
        assert_eq!(s["spec"]["ports"][0]["port"], 15008);
        assert_eq!(s["spec"]["selector"][GATEWAY_NAME_LABEL], "egress-waypoint");
        let b = all
            .iter()
            .find(|d| d.resource == "clusterrolebindings")
            .unwrap();
        assert_eq!(b.name, "egret-waypoint:istio-egress:egress-waypoint");
        assert!(b.namespace.is_empty());
        assert!(b.body["metadata"]["ownerReferences"].is_null());
        assert_eq!(b.body["subjects"][0]["name"], "egress-waypoint");
        assert_eq!(b.body["roleRef"]["name"], "egret-waypoint");
        let r = all.iter().find(|d| d.resource == "rolebindings").unwrap();
        assert_eq!(r.namespace, "istio-system");
        assert_eq!(r.body["roleRef"]["kind"], "Role");
        assert_eq!(r.body["roleRef"]["name"], "egret-mesh-config");
        assert_eq!(r.body["subjects"][0]["namespace"], "istio-egress");
    }
}

//! The waypoint controller and the cluster CA against the fake API server
//! (the real kube client, through a kubeconfig naming it): a Gateway of
//! class `istio-waypoint` yields its Deployment, Service, ServiceAccount,
//! PodDisruptionBudget, ClusterRoleBinding and identity Secret, owned by
//! the Gateway; its status turns Programmed with the Service's address once
//! the Deployment has an available replica, and only then do agents tunnel
//! to it; deleting it removes everything. Nothing leaves loopback.

use std::sync::Arc;
use std::time::Duration;

use egret::config::snapshot::{Snapshot, WaypointBinding};
use egret::identity::{CaCerts, CaSigner, Identity};
use egret::kube::cluster_ca::{self, CaSecrets};
use egret::kube::waypoints::{ControllerConfig, WaypointTemplate};
use egret::kube::{SourceOptions, StatusWriterMode, WaypointMode};
use serde_json::{json, Value};
use tokio::sync::watch;

#[path = "support/eventually.rs"]
mod eventually;
#[path = "support/fake_api.rs"]
mod fake_api;

use eventually::{eventually, snapshot_where};
use fake_api::{kubeconfig, start_server, Fake};

const WALKTHROUGH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/examples/walkthrough"
);
const NS: &str = "istio-egress";
const GW: &str = "egress-waypoint";

fn walkthrough(file: &str) -> String {
    std::fs::read_to_string(format!("{WALKTHROUGH}/{file}")).unwrap()
}

fn secrets() -> CaSecrets {
    CaSecrets {
        plugin: "egret-system/cacerts".parse().unwrap(),
        own: "egret-system/egret-ca".parse().unwrap(),
    }
}

/// The controller's template, with an image of its own.
fn template() -> WaypointTemplate {
    WaypointTemplate {
        image: "registry.example/egret:test".into(),
        ..egret::testing::waypoints::template()
    }
}

/// A `cacerts` Secret as `kubectl create secret generic cacerts
/// --from-file=...` leaves it.
fn cacerts_secret(ca: &CaCerts) -> Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = ca
        .values()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": "cacerts", "namespace": "egret-system"}, "data": data})
}

fn binding(s: &Snapshot) -> Option<WaypointBinding> {
    s.services
        .iter()
        .find(|x| x.host == "httpbin.org")
        .map(|x| x.waypoint.clone())
}

fn programmed(fake: &Fake) -> Option<Value> {
    let gw = fake.get("gateways", NS, GW)?;
    let c = gw["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Programmed")?
        .clone();
    Some(json!({"condition": c, "addresses": gw["status"]["addresses"]}))
}

/// The config source of an agent that writes status and runs the waypoint
/// controller, as the elected agent does; with the signer of the cluster CA
/// it loaded, and the kubeconfig's folder.
async fn agent_with_controller(
    fake: &Fake,
) -> (
    watch::Receiver<Arc<Snapshot>>,
    Arc<CaSigner>,
    tempfile::TempDir,
) {
    let addr = start_server(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let client = egret::kube::client::connect(Some(&kubeconfig(tmp.path(), addr)))
        .await
        .unwrap();
    let signer = Arc::new(cluster_ca::load(&client, &secrets()).await.unwrap());
    let options = SourceOptions {
        writer: StatusWriterMode::Always,
        waypoints: WaypointMode::Deployed(Some(ControllerConfig {
            template: template(),
            signer: signer.clone(),
        })),
        state_dir: None,
    };
    (egret::kube::start(client, options).await, signer, tmp)
}

fn walkthrough_world(fake: &Fake) {
    fake.apply_yaml(&walkthrough("step1-bookinfo-namespace.yaml"));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {
            "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": GW}}
    }));
    fake.apply_yaml(&walkthrough("step2-gateway.yaml"));
    fake.apply_yaml(&walkthrough("step3-serviceentry.yaml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waypoint_gateway_runs_as_its_own_deployment_and_is_reached_at_its_service() {
    let fake = Fake::new();
    let ca = CaCerts::generate().unwrap();
    fake.apply(cacerts_secret(&ca));
    walkthrough_world(&fake);
    let (mut rx, signer, _tmp) = agent_with_controller(&fake).await;
    assert!(
        signer.origin().contains("egret-system/cacerts"),
        "{}",
        signer.origin()
    );

    // Everything that runs the waypoint, owned by the Gateway.
    let gw_uid = fake.get("gateways", NS, GW).unwrap()["metadata"]["uid"].clone();
    for (resource, name) in [
        ("deployments", GW),
        ("services", GW),
        ("serviceaccounts", GW),
        ("poddisruptionbudgets", GW),
        ("secrets", "egress-waypoint-identity"),
    ] {
        let obj = eventually(&format!("{resource} {name}"), || {
            fake.get(resource, NS, name)
        })
        .await;
        let owner = &obj["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"]),
            (&json!("Gateway"), &gw_uid),
            "{resource}"
        );
    }
    let deployment = fake.get("deployments", NS, GW).unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], GW);
    assert_eq!(pod["containers"][0]["image"], "registry.example/egret:test");
    assert!(pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .contains(&json!("--name=istio-egress/egress-waypoint")));
    let binding_name = "egret-waypoint:istio-egress:egress-waypoint";
    let crb = eventually("the ClusterRoleBinding", || {
        fake.get("clusterrolebindings", "", binding_name)
    })
    .await;
    assert_eq!(crb["subjects"][0]["name"], GW);
    // It reads the MeshConfig as the agents do.
    let rb = eventually("the MeshConfig RoleBinding", || {
        fake.get("rolebindings", "istio-system", binding_name)
    })
    .await;
    assert_eq!(
        (&rb["roleRef"]["kind"], &rb["roleRef"]["name"]),
        (&json!("Role"), &json!("egret-mesh-config"))
    );
    let service_ip = fake.get("services", NS, GW).unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    // The identity Secret: the waypoint's SPIFFE ID, signed by the cluster CA.
    let secret = fake.get("secrets", NS, "egress-waypoint-identity").unwrap();
    let decode = |k: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(secret["data"][k].as_str().unwrap())
            .unwrap()
    };
    let chain: Vec<_> = rustls_pemfile::certs(&mut decode("tls.crt").as_slice())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        egret::identity::spiffe::identities_in(&chain[0]).unwrap(),
        vec![Identity {
            trust_domain: "cluster.local".into(),
            namespace: NS.into(),
            service_account: GW.into(),
        }]
    );
    assert_eq!(decode("ca.crt"), ca.root_cert);

    // Not ready yet: Programmed False, no address, traffic refused.
    let pending = eventually("Programmed=False", || {
        programmed(&fake).filter(|p| p["condition"]["status"] == "False")
    })
    .await;
    assert_eq!(pending["condition"]["reason"], "Pending");
    let s = snapshot_where(&mut rx, "the waypoint not ready", |s| {
        matches!(binding(s), Some(WaypointBinding::Missing(_)))
    })
    .await;
    assert!(s.waypoints.is_empty());
    // The ServiceEntry's status still says it is attached to the waypoint.
    let se = fake.get("serviceentries", NS, "httpbin.org").unwrap();
    let se_vip = eventually("the ServiceEntry's address", || {
        fake.get("serviceentries", NS, "httpbin.org").and_then(|o| {
            o["status"]["addresses"][0]["value"]
                .as_str()
                .map(str::to_string)
        })
    })
    .await;
    assert_eq!(se_vip, "240.240.0.2", "{se}");

    // The deployment controller reports a replica available.
    fake.set_status(
        "deployments",
        NS,
        GW,
        json!({"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}),
    );
    let ready = eventually("Programmed=True", || {
        programmed(&fake).filter(|p| p["condition"]["status"] == "True")
    })
    .await;
    assert_eq!(
        ready["addresses"],
        json!([{"type": "IPAddress", "value": service_ip}])
    );
    let s = snapshot_where(&mut rx, "the waypoint at its Service's address", |s| {
        s.waypoints
            .values()
            .any(|w| w.address.map(|a| a.to_string()) == Some(service_ip.clone()))
    })
    .await;
    assert!(matches!(binding(&s), Some(WaypointBinding::Bound(_))));

    // Deleting the Gateway removes what runs it.
    fake.delete("gateways", NS, GW);
    eventually("everything gone", || {
        let gone = [
            "deployments",
            "services",
            "serviceaccounts",
            "poddisruptionbudgets",
        ]
        .iter()
        .all(|r| fake.get(r, NS, GW).is_none())
            && fake
                .get("secrets", NS, "egress-waypoint-identity")
                .is_none()
            && fake.get("clusterrolebindings", "", binding_name).is_none()
            && fake
                .get("rolebindings", "istio-system", binding_name)
                .is_none();
        gone.then_some(())
    })
    .await;
    snapshot_where(&mut rx, "no waypoint", |s| s.waypoints.is_empty()).await;
}

/// A Deployment of the Gateway's name that someone else made is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_egret_did_not_make_is_not_taken_over() {
    let fake = Fake::new();
    walkthrough_world(&fake);
    fake.apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": GW, "namespace": NS, "labels": {"gateway.istio.io/managed": "istio.io-mesh-controller"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "istio-proxy", "image": "istio/proxyv2"}]}}}}));
    let _agent = agent_with_controller(&fake).await;
    eventually("the Service", || fake.get("services", NS, GW)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = fake.get("deployments", NS, GW).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "istio/proxyv2"
    );
    assert!(d["metadata"]["labels"]["app.kubernetes.io/managed-by"].is_null());
}

/// Without a `cacerts` Secret, egret's own cluster CA is created once;
/// agents starting together all get the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_ca_is_created_once_and_shared() {
    let fake = Fake::new();
    let addr = start_server(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let kc = kubeconfig(tmp.path(), addr);
    let mut loads = Vec::new();
    for _ in 0..4 {
        let kc = kc.clone();
        loads.push(tokio::spawn(async move {
            let client = egret::kube::client::connect(Some(&kc)).await.unwrap();
            cluster_ca::load(&client, &secrets()).await.unwrap()
        }));
    }
    let mut roots = Vec::new();
    for l in loads {
        roots.push(l.await.unwrap().roots().to_vec());
    }
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "one CA for all");
    let creates = fake
        .lock()
        .requests
        .iter()
        .filter(|r| r.starts_with("POST /api/v1/namespaces/egret-system/secrets"))
        .count();
    assert!(creates >= 1);
    assert!(fake.get("secrets", "egret-system", "egret-ca").is_some());

    // A cacerts Secret that cannot sign is an error, not a fallback.
    let mut broken = cacerts_secret(&CaCerts::generate().unwrap());
    broken["data"]["ca-key.pem"] = json!("");
    fake.apply(broken);
    let client = egret::kube::client::connect(Some(&kc)).await.unwrap();
    let err = cluster_ca::load(&client, &secrets())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("egret-system/cacerts") && err.contains("ca-key.pem is missing"),
        "{err}"
    );
}

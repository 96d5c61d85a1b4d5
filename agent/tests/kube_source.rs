//! Kubernetes mode against a fake API server on 127.0.0.1: the real kube
//! client (through a kubeconfig naming the fake) lists and watches every
//! config kind, elects itself status writer with a Lease, and patches
//! status. The fake serves lists, chunked watch streams (replaying from the
//! resourceVersion asked for), the Lease, and status PATCHes, which it
//! records. Nothing leaves loopback.

use std::time::Duration;

use egret::config::snapshot::{Snapshot, WaypointBinding};
use egret::kube::lease::LeaseConfig;
use egret::kube::{SourceOptions, StatusWriterMode, WaypointMode};
use egret::testing::manifests::tcp_allowed;
use serde_json::json;

#[path = "support/eventually.rs"]
mod eventually;
#[path = "support/fake_api.rs"]
mod fake_api;

use eventually::{snapshot_where, until, TIMEOUT};
use fake_api::{kubeconfig, kubeconfig_tls, serve_tls_on, start_server, Fake, Patch};

const WALKTHROUGH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/examples/walkthrough"
);

async fn patch_where(fake: &Fake, what: &str, ok: impl Fn(&Patch) -> bool) -> Patch {
    let wait = async {
        loop {
            if let Some(p) = fake.patches().into_iter().find(|p| ok(p)) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no status patch {what}: got {:#?}", fake.patches()))
}

/// Waypoints served by this process, as before waypoint Deployments.
fn local(writer: StatusWriterMode) -> SourceOptions {
    SourceOptions {
        writer,
        waypoints: WaypointMode::Local,
        state_dir: None,
    }
}

fn walkthrough(file: &str) -> String {
    std::fs::read_to_string(format!("{WALKTHROUGH}/{file}")).unwrap()
}

fn service_vips(s: &Snapshot, host: &str) -> Option<Vec<String>> {
    let svc = s.services.iter().find(|x| x.host == host)?;
    Some(svc.vips.iter().map(|v| v.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_through_the_api() {
    let fake = Fake::new();
    // Step 1 and Step 2's namespaces, as `kubectl create`/`label` leave them.
    fake.apply_yaml(&walkthrough("step1-bookinfo-namespace.yaml"));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "istio-egress", "labels": {
            "istio.io/dataplane-mode": "ambient",
            "istio.io/use-waypoint": "egress-waypoint",
            "kubernetes.io/metadata.name": "istio-egress"
        }},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    }));
    fake.apply_yaml(&walkthrough("step2-gateway.yaml"));
    fake.apply_yaml(&walkthrough("step3-serviceentry.yaml"));
    let addr = start_server(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let client = egret::kube::client::connect(Some(&kubeconfig(tmp.path(), addr)))
        .await
        .unwrap();
    let writer = StatusWriterMode::Lease(LeaseConfig {
        namespace: "egret-system".into(),
        name: "egret-status-writer".into(),
        identity: "node-a".into(),
        duration: Duration::from_secs(15),
    });
    let options = SourceOptions {
        state_dir: Some(tmp.path().join("state")),
        ..local(writer)
    };
    let mut rx = egret::kube::start(client, options).await;

    // The Lease is taken, addresses handed out, the waypoint bound.
    let s = snapshot_where(&mut rx, "httpbin.org's walkthrough addresses", |s| {
        service_vips(s, "httpbin.org").is_some_and(|v| v == ["240.240.0.2", "2001:2::2"])
    })
    .await;
    assert!(s.is_ambient("bookinfo") && s.is_ambient("istio-egress"));
    let svc = s.services.iter().find(|x| x.host == "httpbin.org").unwrap();
    assert!(matches!(&svc.waypoint, WaypointBinding::Bound(r) if r.name == "egress-waypoint"));
    assert_eq!(svc.ports[0].number, 80);
    let lease = fake
        .get("leases", "egret-system", "egret-status-writer")
        .expect("a Lease was created");
    assert_eq!(lease["spec"]["holderIdentity"], "node-a");

    // Status as `kubectl get serviceentry httpbin.org -o yaml` shows it.
    let se = patch_where(&fake, "on the ServiceEntry", |p| {
        p.path == "/apis/networking.istio.io/v1/namespaces/istio-egress/serviceentries/httpbin.org/status"
    })
    .await;
    assert_eq!(
        se.body["status"]["addresses"],
        json!([
            {"host": "httpbin.org", "value": "240.240.0.2"},
            {"host": "httpbin.org", "value": "2001:2::2"}
        ])
    );
    let bound = &se.body["status"]["conditions"][0];
    assert_eq!(bound["type"], "istio.io/WaypointBound");
    assert_eq!(bound["status"], "True");
    assert_eq!(bound["reason"], "WaypointAccepted");
    let gw = patch_where(&fake, "on the Gateway", |p| {
        p.path == "/apis/gateway.networking.k8s.io/v1/namespaces/istio-egress/gateways/egress-waypoint/status"
    })
    .await;
    let programmed = &gw.body["status"]["conditions"][1];
    assert_eq!(
        (&programmed["type"], &programmed["status"]),
        (&json!("Programmed"), &json!("True"))
    );

    // An invalid update: the last good version stays in force. A valid
    // change to another object afterwards shows the snapshot that follows
    // still has httpbin.org as it was.
    fake.apply_yaml(&walkthrough("step3-serviceentry.yaml").replace("number: 80", "number: 0"));
    fake.apply_yaml(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: example.com\n  namespace: istio-egress\nspec:\n  hosts: [example.com]\n  ports:\n  - {name: http, number: 80, protocol: HTTP}\n  resolution: DNS\n",
    );
    let s = snapshot_where(&mut rx, "example.com", |s| {
        service_vips(s, "example.com").is_some_and(|v| v.len() == 2)
    })
    .await;
    let svc = s.services.iter().find(|x| x.host == "httpbin.org").unwrap();
    assert_eq!(svc.ports[0].number, 80, "the bad update is not in force");
    assert_eq!(
        service_vips(&s, "httpbin.org").unwrap(),
        ["240.240.0.2", "2001:2::2"]
    );
    assert_eq!(
        service_vips(&s, "example.com").unwrap(),
        ["240.240.0.3", "2001:2::3"]
    );

    // A fixed update goes through.
    fake.apply_yaml(&walkthrough("step3-serviceentry.yaml").replace("number: 80", "number: 8080"));
    snapshot_where(&mut rx, "httpbin.org on 8080", |s| {
        s.services
            .iter()
            .any(|x| x.host == "httpbin.org" && x.ports[0].number == 8080)
    })
    .await;

    // Deletes remove.
    fake.delete("serviceentries", "istio-egress", "httpbin.org");
    let s = snapshot_where(&mut rx, "httpbin.org gone", |s| {
        service_vips(s, "httpbin.org").is_none()
    })
    .await;
    assert!(service_vips(&s, "example.com").is_some());
    fake.delete("namespaces", "", "bookinfo");
    snapshot_where(&mut rx, "bookinfo no longer ambient", |s| {
        !s.is_ambient("bookinfo")
    })
    .await;
}

/// In a cluster the API is HTTPS with the cluster's CA: the client (rustls
/// with ring) trusts the kubeconfig's CA and sends its bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_tls_with_the_kubeconfig_ca() {
    let fake = Fake::new();
    fake.apply_yaml(&walkthrough("step1-bookinfo-namespace.yaml"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, ca) = serve_tls_on(fake.clone(), listener);
    let tmp = tempfile::tempdir().unwrap();
    let client = egret::kube::client::connect(Some(&kubeconfig_tls(tmp.path(), addr, &ca)))
        .await
        .unwrap();
    let options = SourceOptions {
        state_dir: Some(tmp.path().join("state")),
        ..local(StatusWriterMode::Never)
    };
    let mut rx = egret::kube::start(client, options).await;
    snapshot_where(&mut rx, "bookinfo ambient", |s| s.is_ambient("bookinfo")).await;
    assert!(fake
        .lock()
        .requests
        .iter()
        .any(|r| r.starts_with("GET /api/v1/namespaces?")));
    let auth = fake.lock().authorization.clone();
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a == "Bearer test-token"),
        "{auth:?}"
    );
}

fn list_requests(fake: &Fake, path: &str) -> usize {
    let prefix = format!("GET {path}?");
    fake.lock()
        .requests
        .iter()
        .filter(|r| r.starts_with(&prefix) && !r.contains("watch=true"))
        .count()
}

fn namespace(name: &str, mode: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"istio.io/dataplane-mode": mode}}})
}

/// A watch that resumes from a resourceVersion the server has compacted
/// away gets 410 Gone: the source lists again and misses nothing. With a
/// bookmark first, it resumes from the bookmark and needs no list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_after_bookmarks_and_relist_after_410_gone() {
    let fake = Fake::new();
    fake.apply(namespace("bookinfo", "ambient"));
    let addr = start_server(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let client = egret::kube::client::connect(Some(&kubeconfig(tmp.path(), addr)))
        .await
        .unwrap();
    let mut rx = egret::kube::start(client, local(StatusWriterMode::Never)).await;
    snapshot_where(&mut rx, "bookinfo ambient", |s| s.is_ambient("bookinfo")).await;
    let namespaces = "/api/v1/namespaces";
    assert_eq!(list_requests(&fake, namespaces), 1);

    // Bookmark, compaction, server restart: every watch resumes from the
    // bookmark's version, which is still served.
    fake.apply_yaml(&walkthrough("step3-serviceentry.yaml"));
    fake.bookmark();
    // Nothing outside the client shows that it has read the bookmark; give
    // it ample time (200 ms was once too little on a loaded machine).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fake.compact();
    fake.close_watches();
    fake.apply(namespace("reviews", "ambient"));
    snapshot_where(&mut rx, "reviews ambient", |s| s.is_ambient("reviews")).await;
    assert_eq!(
        list_requests(&fake, namespaces),
        1,
        "resumed without a list"
    );
    let gone = fake.lock().requests.len();

    // No bookmark this time: the namespace watch last saw an older version
    // than the compaction, gets 410 and lists again.
    fake.apply_yaml(&walkthrough("step2-gateway.yaml"));
    fake.compact();
    fake.close_watches();
    fake.apply(namespace("bookinfo", "none"));
    snapshot_where(&mut rx, "bookinfo no longer ambient", |s| {
        !s.is_ambient("bookinfo") && s.is_ambient("reviews")
    })
    .await;
    until("a new list of namespaces", || {
        list_requests(&fake, namespaces) == 2
    })
    .await;
    assert!(fake.lock().requests.len() > gone);
}

/// Two agents, one Lease: one holds it (the other's write conflicts), and
/// only once it stops renewing does the other take it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lease_holder_and_takeover_after_expiry() {
    use k8s_openapi::api::coordination::v1::Lease;
    let fake = Fake::new();
    fake.apply(namespace("bookinfo", "ambient"));
    let addr = start_server(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let kc = kubeconfig(tmp.path(), addr);
    let writer = |id: &str| {
        StatusWriterMode::Lease(LeaseConfig {
            namespace: "egret-system".into(),
            name: "egret-status-writer".into(),
            identity: id.into(),
            duration: Duration::from_secs(2),
        })
    };
    let holder = || {
        fake.get("leases", "egret-system", "egret-status-writer")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    let a = egret::kube::start(
        egret::kube::client::connect(Some(&kc)).await.unwrap(),
        local(writer("node-a")),
    )
    .await;
    until("node-a holding the lease", || {
        holder().as_deref() == Some("node-a")
    })
    .await;
    let b = egret::kube::start(
        egret::kube::client::connect(Some(&kc)).await.unwrap(),
        local(writer("node-b")),
    )
    .await;
    // node-b follows while node-a renews (every 2/3 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(holder().as_deref(), Some("node-a"));

    // A writer holding an old resourceVersion is refused.
    let client = egret::kube::client::connect(Some(&kc)).await.unwrap();
    let leases: kube::Api<Lease> = kube::Api::namespaced(client, "egret-system");
    let mut stale = leases.get("egret-status-writer").await.unwrap();
    until("a renewal", || {
        fake.get("leases", "egret-system", "egret-status-writer")
            .unwrap()["metadata"]["resourceVersion"]
            != stale.metadata.resource_version.clone().unwrap().as_str()
    })
    .await;
    stale.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    let err = leases
        .replace("egret-status-writer", &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );

    // node-a stops: its lease runs out and node-b takes it over.
    drop(a);
    until("node-b holding the lease", || {
        holder().as_deref() == Some("node-b")
    })
    .await;
    let lease = fake
        .get("leases", "egret-system", "egret-status-writer")
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_egret_cannot_list_fail_closed_and_unserved_ones_are_empty() {
    use egret::config::mesh::OutboundMode;
    let fake = Fake::new();
    for step in [
        "step1-bookinfo-namespace.yaml",
        "step2-gateway.yaml",
        "step3-serviceentry.yaml",
    ] {
        fake.apply_yaml(&walkthrough(step));
    }
    {
        let mut st = fake.lock();
        // RBAC without the grants (an old install): unknown, so fail closed.
        st.forbidden.insert("authorizationpolicies");
        st.forbidden.insert("configmaps");
        // No Sidecar CRD: there can be no Sidecars.
        st.unserved.insert("sidecars");
    }
    let addr = start_server(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    let client = egret::kube::client::connect(Some(&kubeconfig(tmp.path(), addr)))
        .await
        .unwrap();
    let mut rx = egret::kube::start(client, local(StatusWriterMode::Always)).await;
    let s = rx.borrow().clone();
    assert!(!tcp_allowed(&s), "policies unknown: the waypoint denies");
    assert_eq!(
        s.mesh.outbound,
        OutboundMode::RegistryOnly,
        "MeshConfig unknown"
    );
    assert!(
        s.sidecars.is_empty(),
        "no Sidecar CRD: no Sidecars, no stand-in"
    );

    // Granted: listed, the stand-ins go; the walkthrough has no policy.
    {
        let mut st = fake.lock();
        st.forbidden.clear();
    }
    snapshot_where(&mut rx, "policies and MeshConfig listed", |s| {
        tcp_allowed(s) && s.mesh.outbound == OutboundMode::AllowAny
    })
    .await;
}

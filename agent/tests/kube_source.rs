//! Kubernetes mode against a fake API server on 127.0.0.1: the real kube
//! client (through a kubeconfig naming the fake) lists and watches every
//! config kind, elects itself status writer with a Lease, and patches
//! status. The fake serves lists, chunked watch streams (replaying from the
//! resourceVersion asked for), the Lease, and status PATCHes, which it
//! records. Nothing leaves loopback.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use egret::config::snapshot::{Snapshot, WaypointBinding};
use egret::kube::lease::LeaseConfig;
use egret::kube::StatusWriter;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

const WALKTHROUGH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/examples/walkthrough"
);
const TIMEOUT: Duration = Duration::from_secs(15);

/// One recorded status PATCH.
#[derive(Clone, Debug)]
struct Patch {
    path: String,
    body: Value,
}

/// The fake API server's state: objects by resource (plural), an event log
/// for watches to replay from, and what clients sent.
#[derive(Default)]
struct State {
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    log: Vec<(u64, String, Value)>,
    rv: u64,
    patches: Vec<Patch>,
    lease: Option<Value>,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<(u64, String, Value)>,
}

/// The resource (plural) of a manifest's kind.
fn plural(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "namespaces",
        "Gateway" => "gateways",
        "ServiceEntry" => "serviceentries",
        "AuthorizationPolicy" => "authorizationpolicies",
        "VirtualService" => "virtualservices",
        "DestinationRule" => "destinationrules",
        "Secret" => "secrets",
        other => panic!("no resource for {other}"),
    }
}

impl Fake {
    fn new() -> Fake {
        let (events, _) = broadcast::channel(1024);
        Fake {
            state: Arc::default(),
            events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object; watchers see ADDED or MODIFIED.
    fn apply(&self, mut obj: Value) {
        let kind = obj["kind"].as_str().unwrap().to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let mut st = self.lock();
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        obj["metadata"]["uid"] = json!(format!("uid-{name}"));
        let resource = plural(&kind).to_string();
        let existed = st
            .objects
            .entry(resource.clone())
            .or_default()
            .insert((ns, name), obj.clone())
            .is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        self.emit(&mut st, rv, resource, json!({"type": kind, "object": obj}));
    }

    fn apply_yaml(&self, text: &str) {
        let value: Value = serde_yaml::from_str(text).unwrap();
        self.apply(value);
    }

    fn delete(&self, resource: &str, ns: &str, name: &str) {
        let mut st = self.lock();
        let Some(mut obj) = st
            .objects
            .get_mut(resource)
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())))
        else {
            panic!("no {resource} {ns}/{name}");
        };
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(
            &mut st,
            rv,
            resource.to_string(),
            json!({"type": "DELETED", "object": obj}),
        );
    }

    fn emit(&self, st: &mut State, rv: u64, resource: String, event: Value) {
        st.log.push((rv, resource.clone(), event.clone()));
        let _ = self.events.send((rv, resource, event));
    }

    fn patches(&self) -> Vec<Patch> {
        self.lock().patches.clone()
    }

    async fn serve(
        self,
        req: Request<Incoming>,
    ) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // /api/v1/... or /apis/<group>/<version>/...
        let rest = match segments.first() {
            Some(&"api") => &segments[2..],
            Some(&"apis") => &segments[3..],
            _ => return Ok(status(StatusCode::NOT_FOUND, &path)),
        };
        if rest.len() >= 3 && rest[2] == "leases" {
            return Ok(self.lease(&method, &body));
        }
        match (method, rest) {
            (Method::GET, [resource]) if query.contains("watch=true") => {
                Ok(self.watch(resource, &query))
            }
            (Method::GET, [resource]) => Ok(self.list(resource)),
            (Method::PATCH, ["namespaces", ns, resource, name, "status"]) => {
                Ok(self.patch_status(&path, resource, ns, name, &body))
            }
            _ => Ok(status(StatusCode::NOT_FOUND, &path)),
        }
    }

    fn list(&self, resource: &str) -> Response<BoxBody<Bytes, Infallible>> {
        let st = self.lock();
        let items: Vec<Value> = st
            .objects
            .get(resource)
            .map(|m| m.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|mut o| {
                // The real server leaves the type out of core list items.
                if resource == "namespaces" {
                    let map = o.as_object_mut().unwrap();
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                o
            })
            .collect();
        let list = json!({
            "apiVersion": "v1", "kind": "List",
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        });
        full(StatusCode::OK, list)
    }

    /// A chunked stream of JSON events, one per line: first the logged
    /// events after the resourceVersion asked for, then live ones.
    fn watch(&self, resource: &str, query: &str) -> Response<BoxBody<Bytes, Infallible>> {
        let since: u64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (replay, live) = {
            let st = self.lock();
            let replay: Vec<Value> = st
                .log
                .iter()
                .filter(|(rv, r, _)| *rv > since && r == resource)
                .map(|(_, _, e)| e.clone())
                .collect();
            (replay, self.events.subscribe())
        };
        let resource = resource.to_string();
        let line = |e: &Value| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{e}\n"))));
        let replayed = futures::stream::iter(replay.iter().map(line).collect::<Vec<_>>());
        let live =
            futures::stream::unfold((live, resource), move |(mut rx, resource)| async move {
                loop {
                    match rx.recv().await {
                        Ok((_, r, e)) if r == resource => {
                            return Some((line(&e), (rx, resource)));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
        let body = StreamBody::new(futures::StreamExt::chain(replayed, live));
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(body))
            .unwrap()
    }

    fn patch_status(
        &self,
        path: &str,
        resource: &str,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Response<BoxBody<Bytes, Infallible>> {
        let patch: Value = serde_json::from_slice(body).unwrap();
        let current = {
            let mut st = self.lock();
            st.patches.push(Patch {
                path: path.to_string(),
                body: patch.clone(),
            });
            st.objects
                .get(resource)
                .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
                .cloned()
        };
        let Some(mut obj) = current else {
            return status(StatusCode::NOT_FOUND, path);
        };
        obj["status"] = patch["status"].clone();
        self.apply(obj.clone());
        full(StatusCode::OK, obj)
    }

    fn lease(&self, method: &Method, body: &[u8]) -> Response<BoxBody<Bytes, Infallible>> {
        let mut st = self.lock();
        match *method {
            Method::GET => match &st.lease {
                Some(l) => full(StatusCode::OK, l.clone()),
                None => status(StatusCode::NOT_FOUND, "lease"),
            },
            Method::POST | Method::PUT => {
                let mut lease: Value = serde_json::from_slice(body).unwrap();
                st.rv += 1;
                lease["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                st.lease = Some(lease.clone());
                let code = if *method == Method::POST {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                full(code, lease)
            }
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "lease"),
        }
    }
}

fn full(code: StatusCode, body: Value) -> Response<BoxBody<Bytes, Infallible>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(body.to_string()))))
        .unwrap()
}

/// A Kubernetes `Status` error body.
fn status(code: StatusCode, what: &str) -> Response<BoxBody<Bytes, Infallible>> {
    full(
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("{what} not found"),
            "reason": "NotFound", "code": code.as_u16(),
        }),
    )
}

async fn start_server(fake: Fake) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fake = fake.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| fake.clone().serve(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn kubeconfig(dir: &std::path::Path, addr: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\nusers:\n- name: egret\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: egret\ncurrent-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits until a published snapshot satisfies `ok`.
async fn snapshot_where(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    what: &str,
    ok: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let wait = async {
        loop {
            let s = rx.borrow_and_update().clone();
            if ok(&s) {
                return s;
            }
            rx.changed().await.expect("the source is running");
        }
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("no snapshot with {what}: last {:?}", rx.borrow().services))
}

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
    let writer = StatusWriter::Lease(LeaseConfig {
        namespace: "egret-system".into(),
        name: "egret-status-writer".into(),
        identity: "node-a".into(),
        duration: Duration::from_secs(15),
    });
    let mut rx = egret::kube::start(client, writer).await;

    // The Lease is taken, addresses handed out, the waypoint bound.
    let s = snapshot_where(&mut rx, "httpbin.org's walkthrough addresses", |s| {
        service_vips(s, "httpbin.org").is_some_and(|v| v == ["240.240.0.2", "2001:2::2"])
    })
    .await;
    assert!(s.is_ambient("bookinfo") && s.is_ambient("istio-egress"));
    let svc = s.services.iter().find(|x| x.host == "httpbin.org").unwrap();
    assert!(matches!(&svc.waypoint, WaypointBinding::Bound(r) if r.name == "egress-waypoint"));
    assert_eq!(svc.ports[0].number, 80);
    let lease = fake.lock().lease.clone().expect("a Lease was created");
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

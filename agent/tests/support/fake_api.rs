//! A fake Kubernetes API server for tests, on a listener the test gives it
//! (loopback, or a loopback inside a network namespace the test made):
//! lists, chunked watch streams replaying from the resourceVersion asked
//! for, a Lease, and status PATCHes, which it records with every request.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// One recorded status PATCH.
#[derive(Clone, Debug)]
pub struct Patch {
    pub path: String,
    pub body: Value,
}

/// The fake API server's state: objects by resource (plural), an event log
/// for watches to replay from, and what clients sent.
#[derive(Default)]
pub struct State {
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    log: Vec<(u64, String, Value)>,
    rv: u64,
    patches: Vec<Patch>,
    /// The Lease, once created.
    pub lease: Option<Value>,
    /// Every request, as `METHOD path?query`.
    pub requests: Vec<String>,
    /// The `Authorization` header of every request that had one.
    pub authorization: Vec<String>,
}

/// The server; clones share it.
#[derive(Clone)]
pub struct Fake {
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
        "Pod" => "pods",
        other => panic!("no resource for {other}"),
    }
}

impl Fake {
    pub fn new() -> Fake {
        let (events, _) = broadcast::channel(1024);
        Fake {
            state: Arc::default(),
            events,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object; watchers see ADDED or MODIFIED.
    pub fn apply(&self, mut obj: Value) {
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
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = json!(format!("uid-{name}"));
        }
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

    pub fn apply_yaml(&self, text: &str) {
        let value: Value = serde_yaml::from_str(text).unwrap();
        self.apply(value);
    }

    pub fn delete(&self, resource: &str, ns: &str, name: &str) {
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

    pub fn patches(&self) -> Vec<Patch> {
        self.lock().patches.clone()
    }

    async fn serve(
        self,
        req: Request<Incoming>,
    ) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        {
            let mut st = self.lock();
            st.requests.push(format!("{method} {path}?{query}"));
            if let Some(auth) = req.headers().get(http::header::AUTHORIZATION) {
                let auth = auth.to_str().unwrap_or_default().to_string();
                st.authorization.push(auth);
            }
        }
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

pub fn full(code: StatusCode, body: Value) -> Response<BoxBody<Bytes, Infallible>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(body.to_string()))))
        .unwrap()
}

/// A Kubernetes `Status` error body.
pub fn status(code: StatusCode, what: &str) -> Response<BoxBody<Bytes, Infallible>> {
    full(
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("{what} not found"),
            "reason": "NotFound", "code": code.as_u16(),
        }),
    )
}

/// Serves `fake` on a new listener on 127.0.0.1 (in the caller's netns).
pub async fn start_server(fake: Fake) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(fake, listener)
}

/// Serves `fake` on `listener`.
pub fn serve_on(fake: Fake, listener: tokio::net::TcpListener) -> SocketAddr {
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

/// Serves `fake` over TLS on `listener`, as an API server in a cluster
/// does; returns the address and the PEM of the CA that signed its
/// certificate (for 127.0.0.1).
pub fn serve_tls_on(fake: Fake, listener: tokio::net::TcpListener) -> (SocketAddr, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (fake, acceptor) = (fake.clone(), acceptor.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| fake.clone().serve(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca.pem())
}

/// A kubeconfig naming the fake at `https://addr`, trusting `ca_pem`.
pub fn kubeconfig_tls(dir: &std::path::Path, addr: SocketAddr, ca_pem: &str) -> std::path::PathBuf {
    use base64::Engine as _;
    let path = dir.join("kubeconfig");
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca}\nusers:\n- name: egret\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: egret\ncurrent-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A kubeconfig naming the fake at `addr`, without credentials.
pub fn kubeconfig(dir: &std::path::Path, addr: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\nusers:\n- name: egret\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: egret\ncurrent-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

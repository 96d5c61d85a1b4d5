//! A fake Kubernetes API server for tests, on a listener the test gives it
//! (loopback, or a loopback inside a network namespace the test made). It
//! behaves like the real one for what egret uses:
//!
//! - objects get a uid, a resourceVersion from one cluster-wide counter,
//!   `creationTimestamp`, and `generation` (bumped when `spec` changes);
//!   Services get a `clusterIP`;
//! - lists and watches, cluster-wide or in one namespace, with label and
//!   field selectors (`k=v`, `k==v`, `k!=v`, comma = and); a watch replays
//!   the events after the resourceVersion asked for, then streams live
//!   ones; an object that stops matching the selector is DELETED for it;
//! - watch bookmarks (`allowWatchBookmarks`) when the test calls
//!   [`Fake::bookmark`]; a watch from a resourceVersion older than the last
//!   [`Fake::compact`] gets `410 Gone` (an ERROR event, as the real server
//!   sends it), so clients must list again;
//! - create (409 AlreadyExists), get, replace and patches (JSON merge,
//!   strategic treated as merge, server-side apply with a required
//!   `fieldManager`) with optimistic concurrency: a `metadata.resourceVersion`
//!   that is not the current one is a 409 Conflict; the `status`
//!   subresource changes only `status`, the main resource never does;
//! - delete, and the garbage collector: objects whose every owner
//!   (`ownerReferences`, same namespace, or cluster-scoped owners) is gone
//!   are deleted too;
//! - Leases are plain objects: create once, replace with the
//!   resourceVersion read, or conflict.
//!
//! Every request is recorded, and every status PATCH with its body.
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

/// What the fake knows of a resource.
struct Kind {
    kind: &'static str,
    plural: &'static str,
    api_version: &'static str,
    namespaced: bool,
    /// Has a `status` subresource (the main resource keeps status as is).
    status: bool,
}

const KINDS: &[Kind] = &[
    kind("Namespace", "namespaces", "v1", false, true),
    kind(
        "Gateway",
        "gateways",
        "gateway.networking.k8s.io/v1",
        true,
        true,
    ),
    kind(
        "ServiceEntry",
        "serviceentries",
        "networking.istio.io/v1",
        true,
        true,
    ),
    kind(
        "AuthorizationPolicy",
        "authorizationpolicies",
        "security.istio.io/v1",
        true,
        true,
    ),
    kind(
        "VirtualService",
        "virtualservices",
        "networking.istio.io/v1",
        true,
        true,
    ),
    kind(
        "DestinationRule",
        "destinationrules",
        "networking.istio.io/v1",
        true,
        true,
    ),
    kind("Sidecar", "sidecars", "networking.istio.io/v1", true, true),
    kind("Secret", "secrets", "v1", true, false),
    kind("ConfigMap", "configmaps", "v1", true, false),
    kind("Pod", "pods", "v1", true, true),
    kind("Service", "services", "v1", true, true),
    kind("ServiceAccount", "serviceaccounts", "v1", true, false),
    kind("Deployment", "deployments", "apps/v1", true, true),
    kind(
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "policy/v1",
        true,
        true,
    ),
    kind(
        "RoleBinding",
        "rolebindings",
        "rbac.authorization.k8s.io/v1",
        true,
        false,
    ),
    kind(
        "ClusterRoleBinding",
        "clusterrolebindings",
        "rbac.authorization.k8s.io/v1",
        false,
        false,
    ),
    kind("Lease", "leases", "coordination.k8s.io/v1", true, false),
];

const fn kind(
    kind: &'static str,
    plural: &'static str,
    api_version: &'static str,
    namespaced: bool,
    status: bool,
) -> Kind {
    Kind {
        kind,
        plural,
        api_version,
        namespaced,
        status,
    }
}

fn by_kind(name: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.kind == name)
        .unwrap_or_else(|| panic!("the fake API has no kind {name}"))
}

fn by_plural(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

/// One change, as watches see it.
#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    resource: &'static str,
    kind: &'static str,
    object: Value,
    /// The object before a MODIFIED (to tell a watch with a selector that
    /// it no longer matches).
    old: Option<Value>,
}

/// What a live watch is told.
#[derive(Clone, Debug)]
enum Live {
    Change(Event),
    Bookmark(u64),
    /// Every open watch ends (a server restart, or its timeout).
    Close,
}

/// The fake API server's state.
#[derive(Default)]
pub struct State {
    objects: BTreeMap<&'static str, BTreeMap<(String, String), Value>>,
    log: Vec<Event>,
    /// Events up to here are forgotten: older watches get 410 Gone.
    compacted: u64,
    rv: u64,
    next_cluster_ip: u32,
    patches: Vec<Patch>,
    /// Every request, as `METHOD path?query`.
    pub requests: Vec<String>,
    /// The `Authorization` header of every request that had one.
    pub authorization: Vec<String>,
    /// Resources (plurals) every request on is refused with 403, as RBAC
    /// would without a grant.
    pub forbidden: std::collections::BTreeSet<&'static str>,
    /// Resources (plurals) the server does not serve (404, as for a CRD
    /// that is not installed).
    pub unserved: std::collections::BTreeSet<&'static str>,
}

/// The server; clones share it.
#[derive(Clone)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    live: broadcast::Sender<Live>,
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

impl Fake {
    pub fn new() -> Fake {
        let (live, _) = broadcast::channel(4096);
        Fake {
            state: Arc::default(),
            live,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces an object as a client with full rights would
    /// (status included, no conflict check); watchers see ADDED or MODIFIED.
    pub fn apply(&self, obj: Value) {
        let k = by_kind(obj["kind"].as_str().expect("kind"));
        let mut st = self.lock();
        let key = key_of(k, &obj);
        let old = st.objects.get(k.plural).and_then(|m| m.get(&key)).cloned();
        self.store(&mut st, k, obj, old);
    }

    pub fn apply_yaml(&self, text: &str) {
        let value: Value = serde_yaml::from_str(text).unwrap();
        self.apply(value);
    }

    /// The object, if it exists.
    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(resource)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Every object of a resource.
    pub fn list_of(&self, resource: &str) -> Vec<Value> {
        self.lock()
            .objects
            .get(resource)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Sets an object's status, as its controller (kubelet, the deployment
    /// controller) would.
    pub fn set_status(&self, resource: &str, ns: &str, name: &str, status: Value) {
        let mut obj = self
            .get(resource, ns, name)
            .unwrap_or_else(|| panic!("no {resource} {ns}/{name}"));
        obj["status"] = status;
        self.apply(obj);
    }

    /// Deletes an object (and, like the garbage collector, what it owned).
    pub fn delete(&self, resource: &str, ns: &str, name: &str) {
        let mut st = self.lock();
        assert!(
            self.remove(&mut st, resource, ns, name).is_some(),
            "no {resource} {ns}/{name}"
        );
    }

    /// Forgets the history so far, as etcd compaction does: a watch from
    /// an older resourceVersion gets 410 Gone and its client must list.
    pub fn compact(&self) {
        let mut st = self.lock();
        st.compacted = st.rv;
        st.log.clear();
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch
    /// that allows them.
    pub fn bookmark(&self) {
        let rv = self.lock().rv;
        let _ = self.live.send(Live::Bookmark(rv));
    }

    /// Ends every open watch, as an API server restart does (or each
    /// watch's own timeout): clients watch again from the last
    /// resourceVersion they saw.
    pub fn close_watches(&self) {
        let _ = self.live.send(Live::Close);
    }

    pub fn patches(&self) -> Vec<Patch> {
        self.lock().patches.clone()
    }

    /// Stores `obj` (new or replacing `old`), fills server metadata, logs
    /// and broadcasts the event.
    fn store(&self, st: &mut State, k: &'static Kind, mut obj: Value, old: Option<Value>) -> Value {
        st.rv += 1;
        let rv = st.rv;
        obj["apiVersion"] = json!(k.api_version);
        obj["kind"] = json!(k.kind);
        let meta = &mut obj["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        match &old {
            Some(o) => {
                meta["uid"] = o["metadata"]["uid"].clone();
                meta["creationTimestamp"] = o["metadata"]["creationTimestamp"].clone();
                let generation = o["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = o.get("spec") != obj.get("spec");
                obj["metadata"]["generation"] = json!(generation + i64::from(changed));
            }
            None => {
                if meta["uid"].is_null() {
                    meta["uid"] = json!(format!("uid-{}-{rv}", k.plural));
                }
                meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                meta["generation"] = json!(1);
                if k.kind == "Service" {
                    assign_cluster_ip(st, &mut obj);
                }
            }
        }
        let key = key_of(k, &obj);
        st.objects
            .entry(k.plural)
            .or_default()
            .insert(key, obj.clone());
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.emit(st, k, kind, obj.clone(), old);
        obj
    }

    fn emit(
        &self,
        st: &mut State,
        k: &'static Kind,
        kind: &'static str,
        object: Value,
        old: Option<Value>,
    ) {
        let event = Event {
            rv: st.rv,
            resource: k.plural,
            kind,
            object,
            old,
        };
        st.log.push(event.clone());
        let _ = self.live.send(Live::Change(event));
    }

    /// Removes an object and collects what it owned.
    fn remove(&self, st: &mut State, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let k = by_plural(resource)?;
        let mut obj = st
            .objects
            .get_mut(k.plural)?
            .remove(&(ns.to_string(), name.to_string()))?;
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        self.emit(st, k, "DELETED", obj.clone(), None);
        self.collect_garbage(st);
        Some(obj)
    }

    /// Deletes every object all of whose owners are gone.
    fn collect_garbage(&self, st: &mut State) {
        loop {
            let orphan = st.objects.iter().find_map(|(resource, objects)| {
                objects.iter().find_map(|((ns, name), o)| {
                    let owners = o["metadata"]["ownerReferences"].as_array()?;
                    let alive = owners.iter().any(|r| owner_exists(st, ns, r));
                    (!owners.is_empty() && !alive).then(|| (*resource, ns.clone(), name.clone()))
                })
            });
            let Some((resource, ns, name)) = orphan else {
                return;
            };
            let k = by_plural(resource).expect("stored resources are known");
            if let Some(mut obj) = st
                .objects
                .get_mut(resource)
                .and_then(|m| m.remove(&(ns, name)))
            {
                st.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                self.emit(st, k, "DELETED", obj, None);
            }
        }
    }

    async fn serve(self, req: Request<Incoming>) -> Result<Reply, Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
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
        let Some(target) = Target::parse(&path) else {
            return Ok(status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("{path} not found"),
            ));
        };
        {
            let st = self.lock();
            let plural = target.kind.plural;
            if st.forbidden.contains(plural) {
                return Ok(status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    &format!("{plural} is forbidden: User cannot list resource {plural:?}"),
                ));
            }
            if st.unserved.contains(plural) {
                return Ok(status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("the server could not find the requested resource ({plural})"),
                ));
            }
        }
        let params = Params::parse(&query);
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return Ok(status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &e.to_string(),
                    ))
                }
            }
        };
        Ok(
            match (&method, &target.name, target.subresource.as_deref()) {
                (&Method::GET, None, _) if params.get("watch") == Some("true") => {
                    self.watch(&target, &params)
                }
                (&Method::GET, None, _) => self.list(&target, &params),
                (&Method::GET, Some(_), None) => self.read(&target),
                (&Method::POST, None, _) => self.create(&target, body),
                (&Method::PUT, Some(_), None) => self.replace(&target, body),
                (&Method::PATCH, Some(_), Some("status")) => {
                    self.patch_status(&path, &target, body)
                }
                (&Method::PATCH, Some(_), None)
                    if content_type.starts_with("application/apply-patch") =>
                {
                    self.server_side_apply(&target, &params, body)
                }
                (&Method::PATCH, Some(_), None) => self.merge_patch(&target, body),
                (&Method::DELETE, Some(_), None) => self.delete_request(&target),
                _ => status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &format!("{method} {path}"),
                ),
            },
        )
    }

    fn list(&self, target: &Target, params: &Params) -> Reply {
        let st = self.lock();
        let items: Vec<Value> = st
            .objects
            .get(target.kind.plural)
            .map(|m| {
                m.values()
                    .filter(|o| target.selects(o, params))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut o| {
                // The real server leaves the type out of list items.
                let map = o.as_object_mut().unwrap();
                map.remove("apiVersion");
                map.remove("kind");
                o
            })
            .collect();
        full(
            StatusCode::OK,
            json!({
                "apiVersion": target.kind.api_version,
                "kind": format!("{}List", target.kind.kind),
                "metadata": {"resourceVersion": st.rv.to_string()},
                "items": items,
            }),
        )
    }

    /// A chunked stream of JSON events, one per line: the logged events
    /// after the resourceVersion asked for, then live ones (and bookmarks).
    fn watch(&self, target: &Target, params: &Params) -> Reply {
        let since: u64 = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = params.get("allowWatchBookmarks") == Some("true");
        let (replay, live) = {
            let st = self.lock();
            if since < st.compacted {
                let gone = json!({"type": "ERROR", "object": status_body(
                    410, "Expired", &format!("too old resource version: {since} ({})", st.compacted))});
                drop(st);
                let body = futures::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from(
                    format!("{gone}\n"),
                )))]);
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .body(BodyExt::boxed(StreamBody::new(body)))
                    .unwrap();
            }
            let replay: Vec<String> = st
                .log
                .iter()
                .filter(|e| e.rv > since)
                .filter_map(|e| target.event_line(e, params))
                .collect();
            (replay, self.live.subscribe())
        };
        let target = target.clone();
        let params = params.clone();
        let line = |text: String| Ok::<_, Infallible>(Frame::data(Bytes::from(text)));
        let replayed = futures::stream::iter(replay.into_iter().map(line).collect::<Vec<_>>());
        let live = futures::stream::unfold(
            (live, target, params),
            move |(mut rx, target, params)| async move {
                loop {
                    let text = match rx.recv().await {
                        Ok(Live::Change(e)) => target.event_line(&e, &params),
                        Ok(Live::Bookmark(rv)) if bookmarks => Some(format!(
                            "{}\n",
                            json!({"type": "BOOKMARK", "object": {
                            "apiVersion": target.kind.api_version, "kind": target.kind.kind,
                            "metadata": {"resourceVersion": rv.to_string()}}})
                        )),
                        Ok(Live::Bookmark(_)) | Err(broadcast::error::RecvError::Lagged(_)) => None,
                        Ok(Live::Close) | Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    if let Some(text) = text {
                        return Some((line(text), (rx, target, params)));
                    }
                }
            },
        );
        let body = StreamBody::new(futures::StreamExt::chain(replayed, live));
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(body))
            .unwrap()
    }

    fn read(&self, target: &Target) -> Reply {
        match self.current(target) {
            Some(o) => full(StatusCode::OK, o),
            None => target.not_found(),
        }
    }

    fn current(&self, target: &Target) -> Option<Value> {
        self.get(
            target.kind.plural,
            &target.namespace,
            target.name.as_deref()?,
        )
    }

    fn create(&self, target: &Target, mut body: Value) -> Reply {
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value",
            );
        }
        if target.kind.namespaced {
            body["metadata"]["namespace"] = json!(target.namespace);
        }
        let mut st = self.lock();
        if st
            .objects
            .get(target.kind.plural)
            .is_some_and(|m| m.contains_key(&(target.namespace.clone(), name.clone())))
        {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", target.kind.plural),
            );
        }
        if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("uid");
        }
        let stored = self.store(&mut st, target.kind, body, None);
        full(StatusCode::CREATED, stored)
    }

    /// PUT: the whole object, if its resourceVersion is the current one
    /// (or absent: an unconditional update).
    fn replace(&self, target: &Target, mut body: Value) -> Reply {
        let mut st = self.lock();
        let Some(current) = target.lookup(&st) else {
            return target.not_found();
        };
        if let Some(reply) = conflict(target, &current, &body) {
            return reply;
        }
        if target.kind.status {
            body["status"] = current["status"].clone();
        }
        body["metadata"]["namespace"] = current["metadata"]["namespace"].clone();
        full(
            StatusCode::OK,
            self.store(&mut st, target.kind, body, Some(current)),
        )
    }

    fn merge_patch(&self, target: &Target, patch: Value) -> Reply {
        let mut st = self.lock();
        let Some(current) = target.lookup(&st) else {
            return target.not_found();
        };
        if let Some(reply) = conflict(target, &current, &patch) {
            return reply;
        }
        let mut next = current.clone();
        merge(&mut next, &patch);
        if target.kind.status {
            next["status"] = current["status"].clone();
        }
        full(
            StatusCode::OK,
            self.store(&mut st, target.kind, next, Some(current)),
        )
    }

    /// Server-side apply: creates the object, or merges the applied fields
    /// into it. Like the real server it wants a field manager.
    fn server_side_apply(&self, target: &Target, params: &Params, mut body: Value) -> Reply {
        if params.get("fieldManager").is_none_or(str::is_empty) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "PATCH, application/apply-patch+yaml: fieldManager is required",
            );
        }
        let mut st = self.lock();
        match target.lookup(&st) {
            None => {
                if target.kind.namespaced {
                    body["metadata"]["namespace"] = json!(target.namespace);
                }
                if target.kind.status {
                    body.as_object_mut().map(|m| m.remove("status"));
                }
                full(
                    StatusCode::CREATED,
                    self.store(&mut st, target.kind, body, None),
                )
            }
            Some(current) => {
                if let Some(reply) = conflict(target, &current, &body) {
                    return reply;
                }
                let mut next = current.clone();
                merge(&mut next, &body);
                if target.kind.status {
                    next["status"] = current["status"].clone();
                }
                full(
                    StatusCode::OK,
                    self.store(&mut st, target.kind, next, Some(current)),
                )
            }
        }
    }

    fn patch_status(&self, path: &str, target: &Target, patch: Value) -> Reply {
        let mut st = self.lock();
        st.patches.push(Patch {
            path: path.to_string(),
            body: patch.clone(),
        });
        let Some(current) = target.lookup(&st) else {
            return target.not_found();
        };
        if let Some(reply) = conflict(target, &current, &patch) {
            return reply;
        }
        let mut next = current.clone();
        let mut status_only = json!({});
        status_only["status"] = patch.get("status").cloned().unwrap_or(Value::Null);
        merge(&mut next, &status_only);
        full(
            StatusCode::OK,
            self.store(&mut st, target.kind, next, Some(current)),
        )
    }

    fn delete_request(&self, target: &Target) -> Reply {
        let mut st = self.lock();
        let name = target.name.clone().unwrap_or_default();
        match self.remove(&mut st, target.kind.plural, &target.namespace, &name) {
            Some(obj) => full(StatusCode::OK, obj),
            None => target.not_found(),
        }
    }
}

fn key_of(k: &Kind, obj: &Value) -> (String, String) {
    let ns = if k.namespaced {
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    (
        ns,
        obj["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string(),
    )
}

fn owner_exists(st: &State, ns: &str, owner: &Value) -> bool {
    let Some(k) = owner["kind"]
        .as_str()
        .and_then(|kind| KINDS.iter().find(|k| k.kind == kind))
    else {
        return false;
    };
    let owner_ns = if k.namespaced { ns } else { "" };
    let name = owner["name"].as_str().unwrap_or_default();
    st.objects
        .get(k.plural)
        .and_then(|m| m.get(&(owner_ns.to_string(), name.to_string())))
        .is_some_and(|o| o["metadata"]["uid"] == owner["uid"])
}

/// 10.96.0.10, .11, … as the service CIDR's allocator hands them out.
fn assign_cluster_ip(st: &mut State, obj: &mut Value) {
    let spec = &mut obj["spec"];
    if spec["clusterIP"].is_string() {
        return;
    }
    let ip = std::net::Ipv4Addr::from(u32::from_be_bytes([10, 96, 0, 10]) + st.next_cluster_ip);
    st.next_cluster_ip += 1;
    spec["clusterIP"] = json!(ip.to_string());
    spec["clusterIPs"] = json!([ip.to_string()]);
}

/// A 409 when `body` names a resourceVersion that is not the current one.
fn conflict(target: &Target, current: &Value, body: &Value) -> Option<Reply> {
    let asked = body["metadata"]["resourceVersion"].as_str()?;
    let have = current["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("");
    (asked != have).then(|| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                target.kind.plural,
                target.name.as_deref().unwrap_or("")
            ),
        )
    })
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Query parameters.
#[derive(Clone, Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        Params(
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k2!=v2`: every term must hold. `path` reads the value of a key.
fn selector_matches(selector: Option<&str>, path: impl Fn(&str) -> Option<String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            path(k).as_deref() != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            path(k).as_deref() == Some(v)
        } else {
            path(term).is_some()
        }
    })
}

/// A request's resource, namespace, name and subresource.
#[derive(Clone)]
struct Target {
    kind: &'static Kind,
    /// Empty: all namespaces (lists) or a cluster-scoped object.
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
}

impl Target {
    /// `/api/v1/...` or `/apis/<group>/<version>/...`, then
    /// `[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`.
    fn parse(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest = match segments.first() {
            Some(&"api") => segments.get(2..)?,
            Some(&"apis") => segments.get(3..)?,
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, resource, more @ ..] => {
                (ns.to_string(), [&[*resource][..], more].concat())
            }
            _ => (String::new(), rest.to_vec()),
        };
        let kind = by_plural(rest.first()?)?;
        Some(Target {
            kind,
            namespace,
            name: rest.get(1).map(|s| s.to_string()),
            subresource: rest.get(2).map(|s| s.to_string()),
        })
    }

    fn lookup(&self, st: &State) -> Option<Value> {
        st.objects
            .get(self.kind.plural)?
            .get(&(self.namespace.clone(), self.name.clone()?))
            .cloned()
    }

    fn not_found(&self) -> Reply {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "{} \"{}\" not found",
                self.kind.plural,
                self.name.as_deref().unwrap_or("")
            ),
        )
    }

    /// Whether a list or watch of this target shows `obj`.
    fn selects(&self, obj: &Value, params: &Params) -> bool {
        let in_namespace =
            self.namespace.is_empty() || obj["metadata"]["namespace"] == self.namespace.as_str();
        let labels = |k: &str| obj["metadata"]["labels"][k].as_str().map(str::to_string);
        let fields = |k: &str| {
            let mut v = obj;
            for part in k.split('.') {
                v = &v[part];
            }
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => Some(String::new()),
                other => Some(other.to_string()),
            }
        };
        in_namespace
            && selector_matches(params.get("labelSelector"), labels)
            && selector_matches(params.get("fieldSelector"), fields)
    }

    /// The watch line for `e`, if this watch sees it.
    fn event_line(&self, e: &Event, params: &Params) -> Option<String> {
        if e.resource != self.kind.plural {
            return None;
        }
        let kind = if self.selects(&e.object, params) {
            e.kind
        } else if e.old.as_ref().is_some_and(|o| self.selects(o, params)) {
            "DELETED"
        } else {
            return None;
        };
        Some(format!("{}\n", json!({"type": kind, "object": e.object})))
    }
}

pub fn full(code: StatusCode, body: Value) -> Reply {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(Full::new(Bytes::from(body.to_string()))))
        .unwrap()
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

/// A Kubernetes `Status` error.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Reply {
    full(code, status_body(code.as_u16(), reason, message))
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

//! The API objects in force -> snapshot and status patches. Same rules as
//! the folder: each object is checked by the manifest parser; a bad update
//! leaves the object's last good version in force; a deleted object goes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use kube::core::{ApiResource, DynamicObject};

use super::addresses::assign;
use super::convert::{gateway_address, key_of, published_addresses, status_of, to_object};
use super::resources::has_status;
use super::status_patch::{patch_body, StatusPatch};
use crate::config::allocate::{Addresses, AllocKey};
use crate::config::compile::{compile, wanted_addresses};
use crate::config::kinds::{KindInfo, Spec};
use crate::config::object::{Object, ObjectKey};
use crate::config::snapshot::{Snapshot, WaypointRef};
use crate::config::status;

/// Every object the API holds of one kind, as the watch sees them.
pub struct KindObjects {
    /// The kind.
    pub info: &'static KindInfo,
    /// Its API resource.
    pub resource: ApiResource,
    /// The objects.
    pub objects: Vec<Arc<DynamicObject>>,
}

/// What one pass produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// A new snapshot, when the objects or addresses in force changed.
    pub snapshot: Option<Snapshot>,
    /// Status updates to send (only when this agent writes status).
    pub patches: Vec<StatusPatch>,
}

/// Keeps the last good version of every object and the addresses proposed.
#[derive(Debug, Default)]
pub struct ApiReconciler {
    last_good: BTreeMap<ObjectKey, Object>,
    assigned: HashMap<AllocKey, Addresses>,
    /// Waypoint addresses from Gateway status (deployed waypoints).
    waypoint_addresses: HashMap<WaypointRef, IpAddr>,
    /// What status is rendered from (every Gateway in it).
    current: Arc<Snapshot>,
    logged: HashSet<String>,
    generation: u64,
    /// Waypoints run as their own Deployments (see [`Self::deployed`]).
    deployed: bool,
}

impl ApiReconciler {
    /// A reconciler with nothing in force yet; this process serves
    /// waypoints itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reconciler for waypoints that run as Deployments: a waypoint is
    /// reached at the address its Gateway's status publishes; a waypoint
    /// Gateway with neither that nor `spec.addresses` is not ready and
    /// left out of the snapshot, so its services are refused (waypoint
    /// missing) instead of being served elsewhere. Its status is the
    /// waypoint controller's to write.
    pub fn deployed() -> Self {
        ApiReconciler {
            deployed: true,
            ..Self::default()
        }
    }

    /// The objects in force.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.last_good.values()
    }

    /// One pass over everything the API holds. `writer`: this agent hands
    /// out addresses and writes status.
    pub fn reconcile(&mut self, kinds: &[KindObjects], writer: bool) -> Outcome {
        let mut next = BTreeMap::new();
        let mut published = HashMap::new();
        let mut waypoint_addresses = HashMap::new();
        let mut messages = HashSet::new();
        for kind in kinds {
            for obj in &kind.objects {
                if kind.info.kind == "ServiceEntry" {
                    published.extend(published_addresses(obj));
                }
                if kind.info.kind == "Gateway" && self.deployed {
                    waypoint_addresses.extend(gateway_address(obj));
                }
                let key = key_of(obj, kind.info.kind, kind.info.namespaced);
                match to_object(obj, &kind.resource) {
                    Ok(o) => {
                        next.insert(key, o);
                    }
                    Err(rejected) => {
                        let fate = match self.last_good.get(&key) {
                            Some(old) => {
                                next.insert(key.clone(), old.clone());
                                "the last good version stays in force"
                            }
                            None => "it is not in force",
                        };
                        for e in &rejected.errors {
                            let line = format!("{e}; {fate}");
                            if self.logged.insert(line.clone()) {
                                tracing::error!(kind = key.kind, namespace = %key.namespace, name = %key.name, "{line}");
                            }
                            messages.insert(line);
                        }
                    }
                }
            }
        }
        let wanted = wanted_addresses(next.values());
        let assigned = assign(&wanted, &published, &self.assigned, writer);
        let unchanged = self.generation > 0
            && assigned == self.assigned
            && waypoint_addresses == self.waypoint_addresses
            && next.len() == self.last_good.len()
            && next
                .iter()
                .zip(self.last_good.iter())
                .all(|((k1, a), (k2, b))| k1 == k2 && a.raw == b.raw);
        self.last_good = next;
        self.assigned = assigned;
        self.waypoint_addresses = waypoint_addresses;
        let mut outcome = Outcome::default();
        if !unchanged {
            let pending = self.pending_waypoints();
            for r in &pending {
                let line = format!("waypoint {r} has no address yet (its Deployment is not ready); traffic to its services is refused");
                if self.logged.insert(line.clone()) {
                    tracing::warn!("{line}");
                }
                messages.insert(line);
            }
            let in_force = self.last_good.values().filter(|o| !is_pending(o, &pending));
            let mut snapshot = compile(in_force, &self.assigned);
            for (r, w) in snapshot.waypoints.iter_mut() {
                if w.address.is_none() {
                    w.address = self.waypoint_addresses.get(r).copied();
                }
            }
            self.generation += 1;
            snapshot.generation = self.generation;
            // Status shows every waypoint binding, ready or not.
            self.current = if pending.is_empty() || !writer {
                Arc::new(snapshot.clone())
            } else {
                Arc::new(compile(self.last_good.values(), &self.assigned))
            };
            outcome.snapshot = Some(snapshot);
        }
        self.logged.retain(|m| messages.contains(m));
        if writer {
            outcome.patches = self.patches(kinds);
        }
        outcome
    }

    /// Status updates for every ServiceEntry and Gateway whose status in
    /// the API differs from what egret renders.
    fn patches(&self, kinds: &[KindObjects]) -> Vec<StatusPatch> {
        let now = status::rfc3339(SystemTime::now());
        let mut rendered =
            status::render(self.last_good.values(), &self.current, &self.assigned, &now);
        let mut out = Vec::new();
        // Deployed waypoints' Gateway status is the controller's.
        let ours =
            |k: &&KindObjects| has_status(k.info) && !(self.deployed && k.info.kind == "Gateway");
        for kind in kinds.iter().filter(ours) {
            for obj in &kind.objects {
                let key = key_of(obj, kind.info.kind, kind.info.namespaced);
                let Some(wanted) = rendered.remove(&key.file_name()) else {
                    continue;
                };
                if let Some(body) = patch_body(&status_of(obj), wanted) {
                    out.push(StatusPatch {
                        key,
                        resource: kind.resource.clone(),
                        body,
                    });
                }
            }
        }
        out
    }
}

impl ApiReconciler {
    /// Waypoint Gateways (deployed mode) with no address to reach them at.
    fn pending_waypoints(&self) -> HashSet<WaypointRef> {
        if !self.deployed {
            return HashSet::new();
        }
        self.last_good
            .values()
            .filter_map(|o| match &o.spec {
                Spec::Gateway(gw) if gw.is_waypoint() && gw.ip_address().is_none() => {
                    let r = WaypointRef {
                        namespace: o.namespace().to_string(),
                        name: o.name().to_string(),
                    };
                    (!self.waypoint_addresses.contains_key(&r)).then_some(r)
                }
                _ => None,
            })
            .collect()
    }
}

fn is_pending(o: &Object, pending: &HashSet<WaypointRef>) -> bool {
    o.info.kind == "Gateway"
        && pending
            .iter()
            .any(|r| r.namespace == o.namespace() && r.name == o.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kinds::by_kind;
    use crate::config::snapshot::WaypointBinding;
    use crate::kube::resources::api_resource;

    fn obj(text: &str) -> Arc<DynamicObject> {
        let value: serde_json::Value = serde_yaml::from_str(text).unwrap();
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn kind(name: &str, objects: Vec<Arc<DynamicObject>>) -> KindObjects {
        let info = by_kind(name).unwrap();
        KindObjects {
            info,
            resource: api_resource(info),
            objects,
        }
    }

    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-egress\n  labels:\n    istio.io/dataplane-mode: ambient\n";
    const GATEWAY: &str = include_str!("../config/testdata/step2-gateway.yaml");
    const SERVICE_ENTRY: &str = include_str!("../config/testdata/step3-serviceentry.yaml");

    fn world(se: &str) -> Vec<KindObjects> {
        vec![
            kind("Namespace", vec![obj(NAMESPACE)]),
            kind("Gateway", vec![obj(GATEWAY)]),
            kind("ServiceEntry", vec![obj(se)]),
        ]
    }

    #[test]
    fn walkthrough_snapshot_and_status_patches() {
        let mut r = ApiReconciler::new();
        let out = r.reconcile(&world(SERVICE_ENTRY), true);
        let s = out.snapshot.unwrap();
        assert_eq!(s.generation, 1);
        assert_eq!(s.services[0].vips.len(), 2);
        assert!(matches!(s.services[0].waypoint, WaypointBinding::Bound(_)));
        assert!(s.is_ambient("istio-egress"));
        let se = out
            .patches
            .iter()
            .find(|p| p.key.kind == "ServiceEntry")
            .unwrap();
        assert_eq!(se.body["status"]["addresses"][0]["value"], "240.240.0.2");
        assert_eq!(se.body["status"]["addresses"][1]["value"], "2001:2::2");
        assert_eq!(
            se.body["status"]["conditions"][0]["type"],
            "istio.io/WaypointBound"
        );
        let gw = out
            .patches
            .iter()
            .find(|p| p.key.kind == "Gateway")
            .unwrap();
        assert_eq!(gw.body["status"]["conditions"][1]["type"], "Programmed");
        assert_eq!(gw.body["status"]["conditions"][1]["status"], "True");

        // Nothing changed: no snapshot; statuses still missing: patches again.
        let again = r.reconcile(&world(SERVICE_ENTRY), true);
        assert!(again.snapshot.is_none());
        assert_eq!(again.patches.len(), 2);
    }

    #[test]
    fn published_status_is_read_back_and_not_rewritten() {
        let mut writer = ApiReconciler::new();
        let out = writer.reconcile(&world(SERVICE_ENTRY), true);
        let mut se: serde_json::Value = serde_yaml::from_str(SERVICE_ENTRY).unwrap();
        let body = &out
            .patches
            .iter()
            .find(|p| p.key.kind == "ServiceEntry")
            .unwrap()
            .body;
        se["status"] = body["status"].clone();
        let mut gw: serde_json::Value = serde_yaml::from_str(GATEWAY).unwrap();
        let body = &out
            .patches
            .iter()
            .find(|p| p.key.kind == "Gateway")
            .unwrap()
            .body;
        gw["status"] = body["status"].clone();
        let published = vec![
            kind("Namespace", vec![obj(NAMESPACE)]),
            kind(
                "Gateway",
                vec![Arc::new(serde_json::from_value(gw).unwrap())],
            ),
            kind(
                "ServiceEntry",
                vec![Arc::new(serde_json::from_value(se).unwrap())],
            ),
        ];
        let out = writer.reconcile(&published, true);
        assert!(out.snapshot.is_none(), "same addresses, same objects");
        assert!(out.patches.is_empty(), "{:?}", out.patches);
        // Another node's agent, not the writer, gets the same addresses.
        let mut reader = ApiReconciler::new();
        let out = reader.reconcile(&published, false);
        let vips = &out.snapshot.unwrap().services[0].vips;
        assert_eq!(vips[0].to_string(), "240.240.0.2");
        assert!(out.patches.is_empty());
    }

    #[test]
    fn deployed_waypoints_are_reached_at_their_published_address_and_refused_before() {
        let mut r = ApiReconciler::deployed();
        let out = r.reconcile(&world(SERVICE_ENTRY), true);
        let s = out.snapshot.unwrap();
        assert!(s.waypoints.is_empty(), "not ready: left out");
        assert!(matches!(
            s.services[0].waypoint,
            WaypointBinding::Missing(_)
        ));
        assert!(
            out.patches.iter().all(|p| p.key.kind != "Gateway"),
            "the controller writes Gateway status"
        );
        // The ServiceEntry is still reported attached.
        let se = out
            .patches
            .iter()
            .find(|p| p.key.kind == "ServiceEntry")
            .unwrap();
        assert_eq!(se.body["status"]["conditions"][0]["status"], "True");

        let mut gw: serde_json::Value = serde_yaml::from_str(GATEWAY).unwrap();
        gw["status"] =
            serde_json::json!({"addresses": [{"type": "IPAddress", "value": "10.96.0.10"}]});
        let published = vec![
            kind("Namespace", vec![obj(NAMESPACE)]),
            kind(
                "Gateway",
                vec![Arc::new(serde_json::from_value(gw).unwrap())],
            ),
            kind("ServiceEntry", vec![obj(SERVICE_ENTRY)]),
        ];
        let s = r
            .reconcile(&published, true)
            .snapshot
            .expect("the address is a change");
        let w = s.waypoints.values().next().unwrap();
        assert_eq!(w.address, Some("10.96.0.10".parse().unwrap()));
        assert!(matches!(s.services[0].waypoint, WaypointBinding::Bound(_)));

        // Node agents serving waypoints themselves ignore the published address.
        let mut local = ApiReconciler::new();
        let s = local.reconcile(&published, true).snapshot.unwrap();
        assert_eq!(s.waypoints.values().next().unwrap().address, None);
    }

    #[test]
    fn reader_without_published_addresses_has_no_vip() {
        let mut r = ApiReconciler::new();
        let s = r.reconcile(&world(SERVICE_ENTRY), false).snapshot.unwrap();
        assert!(s.services[0].vips.is_empty());
    }

    #[test]
    fn invalid_update_keeps_last_good_and_delete_removes() {
        let mut r = ApiReconciler::new();
        r.reconcile(&world(SERVICE_ENTRY), true);
        let bad = SERVICE_ENTRY.replace("number: 80", "number: 0");
        let out = r.reconcile(&world(&bad), true);
        assert!(out.snapshot.is_none(), "the last good version stays");
        assert_eq!(r.objects().count(), 3);
        let good = SERVICE_ENTRY.replace("number: 80", "number: 8080");
        let s = r.reconcile(&world(&good), true).snapshot.unwrap();
        assert_eq!(s.services[0].ports[0].number, 8080);
        let gone = vec![kind("Namespace", vec![obj(NAMESPACE)])];
        let s = r.reconcile(&gone, true).snapshot.unwrap();
        assert!(s.services.is_empty() && s.waypoints.is_empty());
    }
}

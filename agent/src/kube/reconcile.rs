//! The API objects in force -> snapshot and status patches. Same rules as
//! the folder: each object is checked by the manifest parser; a bad update
//! leaves the object's last good version in force; a deleted object goes.
//! With a state folder, every accepted version is kept on disk too, so an
//! object that is invalid when the agent starts runs on the version
//! accepted before the restart, and a kind whose list has not come in yet
//! runs on its stored versions rather than on nothing. An object refused
//! with no last good version gets the compiler's fail-closed stand-in when
//! its kind has one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use kube::core::{ApiResource, DynamicObject};

use super::addresses::assign;
use super::convert::{gateway_address, key_of, published_addresses, status_of, to_object};
use super::resources::has_status;
use super::status_patch::{patch_body, StatusPatch};
use crate::config::allocate::{Addresses, AllocKey};
use crate::config::compile::{compile_with, wanted_addresses};
use crate::config::kinds::{KindInfo, Spec};
use crate::config::last_good::LastGood;
use crate::config::object::{Object, ObjectKey};
use crate::config::refused::{self, InForce, Refused};
use crate::config::snapshot::{Snapshot, WaypointRef};
use crate::config::status;
use crate::config::unaccepted::{has_stand_in, Unaccepted};
use crate::config::version::digest;

/// The source recorded with versions accepted from the API.
const API_SOURCE: &str = "the Kubernetes API";

/// Every object the API holds of one kind, as the watch sees them.
pub struct KindObjects {
    /// The kind.
    pub info: &'static KindInfo,
    /// Its API resource.
    pub resource: ApiResource,
    /// The objects.
    pub objects: Vec<Arc<DynamicObject>>,
    /// Whether the watch has listed the kind: until then the objects are
    /// not all there, and the stored versions of the kind stay in force.
    pub listed: bool,
}

/// What one pass produced.
#[derive(Debug, Default)]
pub struct PassOutcome {
    /// A new snapshot, when the objects or addresses in force changed.
    pub snapshot: Option<Snapshot>,
    /// Status updates to send (only when this agent writes status).
    pub patches: Vec<StatusPatch>,
}

/// Keeps the last good version of every object and the addresses proposed.
#[derive(Debug, Default)]
pub struct ApiReconciler {
    last_good: BTreeMap<ObjectKey, Object>,
    /// Refused objects with no last good version.
    unaccepted: BTreeMap<ObjectKey, Unaccepted>,
    refused: BTreeMap<ObjectKey, Refused>,
    /// Accepted versions on disk, with the folder they live in.
    stored: Option<(LastGood, PathBuf)>,
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
    /// A reconciler with nothing in force yet, keeping nothing on disk;
    /// this process serves waypoints itself.
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

    /// The same reconciler keeping every accepted version in `state_dir`
    /// (and reading back those of an earlier run).
    pub fn with_state(mut self, state_dir: &Path) -> Self {
        let (store, corrupt) = LastGood::open(state_dir);
        for c in corrupt {
            tracing::error!("{c}");
        }
        self.stored = Some((store, state_dir.to_path_buf()));
        self
    }

    /// Every refused object and what runs instead.
    pub fn refused(&self) -> impl Iterator<Item = &Refused> {
        self.refused.values()
    }

    /// The objects in force.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.last_good.values()
    }

    /// One pass over everything the API holds. `writer`: this agent hands
    /// out addresses and writes status.
    pub fn reconcile(&mut self, kinds: &[KindObjects], writer: bool) -> PassOutcome {
        let mut next = BTreeMap::new();
        let mut unaccepted = BTreeMap::new();
        let mut refused = BTreeMap::new();
        let mut published = HashMap::new();
        let mut waypoint_addresses = HashMap::new();
        let mut messages = HashSet::new();
        let now = status::rfc3339(SystemTime::now());
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
                        if let Some((store, _)) = self.stored.as_mut() {
                            store.save(&o, digest(&o.raw), API_SOURCE, &now);
                        }
                        next.insert(key, o);
                    }
                    Err(rejected) => {
                        let kept = self
                            .last_good
                            .get(&key)
                            .cloned()
                            .or_else(|| self.restore(&key));
                        let in_force = match kept {
                            Some(old) => {
                                next.insert(key.clone(), old);
                                self.stored_as_last_good(&key)
                            }
                            None if has_stand_in(key.kind) => {
                                let spec = (*rejected.spec).clone();
                                unaccepted.insert(
                                    key.clone(),
                                    Unaccepted {
                                        key: key.clone(),
                                        spec,
                                    },
                                );
                                InForce::FailClosed
                            }
                            None => InForce::Nothing,
                        };
                        let fate = in_force.describe();
                        let errors: Vec<String> =
                            rejected.errors.iter().map(ToString::to_string).collect();
                        for e in &errors {
                            let line = format!("{e}; {fate}");
                            if self.logged.insert(line.clone()) {
                                tracing::error!(kind = key.kind, namespace = %key.namespace, name = %key.name, "{line}");
                            }
                            messages.insert(line);
                        }
                        let since = self
                            .refused
                            .get(&key)
                            .map_or_else(|| now.clone(), |r| r.since.clone());
                        refused.insert(key.clone(), Refused::new(&key, errors, in_force, since));
                    }
                }
            }
        }
        self.keep_unlisted(kinds, &mut next);
        for stand_in in super::unlisted::stand_ins(kinds, &next) {
            let line = format!(
                "{}s could not be listed from the API and none are known: {} until they are (fail closed)",
                stand_in.key.kind,
                match stand_in.key.kind {
                    "AuthorizationPolicy" => "every waypoint denies every request and connection",
                    _ => "the mesh is REGISTRY_ONLY",
                }
            );
            if self.logged.insert(line.clone()) {
                tracing::error!("{line}");
            }
            messages.insert(line);
            unaccepted.insert(stand_in.key.clone(), stand_in);
        }
        self.write_state(&next, refused);

        let wanted = wanted_addresses(next.values());
        let assigned = assign(&wanted, &published, &self.assigned, writer);
        let unchanged = self.generation > 0
            && assigned == self.assigned
            && waypoint_addresses == self.waypoint_addresses
            && unaccepted == self.unaccepted
            && next.len() == self.last_good.len()
            && next
                .iter()
                .zip(self.last_good.iter())
                .all(|((k1, a), (k2, b))| k1 == k2 && a.raw == b.raw);
        self.last_good = next;
        self.unaccepted = unaccepted;
        self.assigned = assigned;
        self.waypoint_addresses = waypoint_addresses;
        let mut outcome = PassOutcome::default();
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
            let mut snapshot = compile_with(in_force, self.unaccepted.values(), &self.assigned);
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
                Arc::new(compile_with(
                    self.last_good.values(),
                    self.unaccepted.values(),
                    &self.assigned,
                ))
            };
            outcome.snapshot = Some(snapshot);
        }
        self.logged.retain(|m| messages.contains(m));
        if writer {
            outcome.patches = self.patches(kinds);
        }
        outcome
    }

    /// The stored version of `key`, read back (after a restart); a corrupt
    /// one is reported and counts as none.
    fn restore(&self, key: &ObjectKey) -> Option<Object> {
        let (store, _) = self.stored.as_ref()?;
        store
            .load(key)
            .inspect_err(|c| tracing::error!("{c}"))
            .ok()
            .flatten()
    }

    fn stored_as_last_good(&self, key: &ObjectKey) -> InForce {
        let stored = self.stored.as_ref().and_then(|(s, _)| s.get(key));
        InForce::LastGood {
            accepted: stored.map_or_else(String::new, |s| s.accepted.clone()),
            source: stored.map_or_else(|| API_SOURCE.to_string(), |s| s.source.clone()),
        }
    }

    /// A kind not listed yet keeps what it had in force — in memory, else
    /// its stored versions — rather than running on nothing.
    fn keep_unlisted(&self, kinds: &[KindObjects], next: &mut BTreeMap<ObjectKey, Object>) {
        for kind in kinds.iter().filter(|k| !k.listed) {
            let kind_name = kind.info.kind;
            for (key, old) in self.last_good.iter().filter(|(k, _)| k.kind == kind_name) {
                next.entry(key.clone()).or_insert_with(|| old.clone());
            }
            let Some((store, _)) = self.stored.as_ref() else {
                continue;
            };
            let stored: Vec<ObjectKey> = store
                .keys()
                .filter(|k| k.kind == kind_name && !next.contains_key(*k))
                .cloned()
                .collect();
            for key in stored {
                if let Some(object) = self.restore(&key) {
                    next.insert(key, object);
                }
            }
        }
    }

    /// Drops stored versions of objects the API no longer has (kinds
    /// listed only), writes what is queued and the refused list.
    fn write_state(
        &mut self,
        next: &BTreeMap<ObjectKey, Object>,
        refused: BTreeMap<ObjectKey, Refused>,
    ) {
        let changed = refused != self.refused;
        self.refused = refused;
        let Some((store, state_dir)) = self.stored.as_mut() else {
            return;
        };
        let gone: Vec<ObjectKey> = store
            .keys()
            .filter(|k| !next.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            store.remove(&key);
        }
        if let Err(e) = store.flush() {
            tracing::error!("keeping last good versions: {e}");
        }
        if changed || self.generation == 0 {
            let list: Vec<Refused> = self.refused.values().cloned().collect();
            if let Err(e) = refused::write(state_dir, &list) {
                tracing::error!("writing the refused list: {e}");
            }
        }
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
            listed: true,
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

    const DENY_POST: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-post
  namespace: istio-egress
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: egress-waypoint}
  action: DENY
  rules:
  - to:
    - operation: {methods: [POST]}
";

    fn with_policy(policy: &str, listed: bool) -> Vec<KindObjects> {
        let mut kinds = world(SERVICE_ENTRY);
        let mut policies = kind("AuthorizationPolicy", vec![obj(policy)]);
        policies.listed = listed;
        kinds.push(policies);
        kinds
    }

    fn policy_names(s: &Snapshot) -> usize {
        s.authz.len()
    }

    /// Whether `GET httpbin.org/get` through the waypoint is allowed.
    fn get_allowed(s: &Snapshot) -> bool {
        crate::testing::manifests::http_allowed(s, "GET", "/get")
    }

    #[test]
    fn an_object_invalid_at_start_runs_on_the_version_stored_before_the_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let s = ApiReconciler::new()
            .with_state(tmp.path())
            .reconcile(&with_policy(DENY_POST, true), true)
            .snapshot
            .unwrap();
        assert_eq!(policy_names(&s), 1);

        let broken = DENY_POST.replace("action: DENY", "action: DENIED");
        let mut restarted = ApiReconciler::new().with_state(tmp.path());
        let s = restarted
            .reconcile(&with_policy(&broken, true), true)
            .snapshot
            .unwrap();
        assert_eq!(policy_names(&s), 1, "the stored DENY is in force");
        assert!(get_allowed(&s), "it denies POST only: not a stand-in");
        let report = restarted.refused().next().unwrap();
        assert!(
            matches!(&report.in_force, InForce::LastGood { source, .. } if source == API_SOURCE),
            "{report:?}"
        );
        assert!(report.errors[0].contains("spec.action"), "{report:?}");
        assert_eq!(refused::read(tmp.path()).len(), 1);
        // Without a state folder the restart would have lost it.
        let s = ApiReconciler::new()
            .reconcile(&with_policy(&broken, true), true)
            .snapshot
            .unwrap();
        assert_eq!(policy_names(&s), 1);
        assert!(!get_allowed(&s), "a fail-closed stand-in");
    }

    #[test]
    fn an_invalid_policy_with_no_last_good_version_gets_a_fail_closed_stand_in() {
        let tmp = tempfile::tempdir().unwrap();
        let allow_all = DENY_POST
            .replace("action: DENY", "action: ALLOW")
            .replace("methods: [POST]", "methods: 42");
        let mut r = ApiReconciler::new().with_state(tmp.path());
        let s = r
            .reconcile(&with_policy(&allow_all, true), true)
            .snapshot
            .unwrap();
        assert!(!get_allowed(&s));
        assert_eq!(r.refused().next().unwrap().in_force, InForce::FailClosed);
    }

    #[test]
    fn a_kind_not_listed_yet_runs_on_its_stored_versions() {
        let tmp = tempfile::tempdir().unwrap();
        ApiReconciler::new()
            .with_state(tmp.path())
            .reconcile(&with_policy(DENY_POST, true), true);
        let mut unlisted = world(SERVICE_ENTRY);
        let mut policies = kind("AuthorizationPolicy", vec![]);
        policies.listed = false;
        unlisted.push(policies);
        let mut r = ApiReconciler::new().with_state(tmp.path());
        let s = r.reconcile(&unlisted, true).snapshot.unwrap();
        assert_eq!(policy_names(&s), 1, "not dropped before the list is in");
        // Listed, and gone from the API: gone from disk too.
        let mut listed = world(SERVICE_ENTRY);
        listed.push(kind("AuthorizationPolicy", vec![]));
        let s = r.reconcile(&listed, true).snapshot.unwrap();
        assert_eq!(policy_names(&s), 0);
        let mut fresh = ApiReconciler::new().with_state(tmp.path());
        let s = fresh.reconcile(&unlisted, true).snapshot.unwrap();
        // Deleted for good: not restored. Unlisted with nothing stored, the
        // policies are unknown, so the fail-closed stand-in denies instead.
        assert_eq!(policy_names(&s), 1);
        assert!(!get_allowed(&s), "unknown policies: the waypoint denies");
        let s = fresh.reconcile(&listed, true).snapshot.unwrap();
        assert!(get_allowed(&s) && policy_names(&s) == 0, "listed: none");
    }
}

//! Carries out the controller's passes against the API: server-side apply
//! (field manager `egret`) of each waypoint's objects, issuing its
//! identity Secret, Gateway status patches, deletes. It watches the
//! Deployments, Services and bindings egret manages (by label),
//! and never takes over an object of the same name that another
//! controller made.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::plan::{plan, PlannedAction, View};
use super::render::{
    identity_secret, Desired, GatewayRef, WaypointTemplate, MANAGED_BY, MANAGED_BY_LABEL,
    MESH_CONFIG_NAMESPACE,
};
use crate::identity::signer::{pem, LEAF_LIFETIME};
use crate::identity::{CaSigner, Identity};
use crate::kube::error::KubeError;

/// The field manager of everything egret applies.
pub const FIELD_MANAGER: &str = "egret";
/// Objects applied are applied again after this long, even unchanged
/// (someone may have deleted or edited one egret does not watch).
const REASSERT: Duration = Duration::from_secs(300);
/// A certificate just issued is not issued again before its Secret shows
/// up in the watch (or this long passes).
const ISSUE_GRACE: Duration = Duration::from_secs(60);

/// What the controller needs from the agent.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// How the Deployments are made.
    pub template: WaypointTemplate,
    /// The cluster CA, to issue the waypoints' certificates.
    pub signer: Arc<CaSigner>,
}

/// The API resources the controller writes or watches, with the verbs it
/// uses on each (the install's RBAC grants exactly these).
pub const API_USE: &[(&str, &str, &[&str])] = &[
    ("", "serviceaccounts", &["get", "create", "patch", "delete"]),
    (
        "",
        "services",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    ("", "secrets", &["create", "patch", "delete"]),
    (
        "apps",
        "deployments",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "policy",
        "poddisruptionbudgets",
        &["get", "create", "patch", "delete"],
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
];

/// What the controller uses in istiod's namespace only (the waypoints'
/// MeshConfig RoleBindings).
pub const MESH_NAMESPACE_API_USE: &[(&str, &str, &[&str])] = &[(
    "rbac.authorization.k8s.io",
    "rolebindings",
    &["get", "list", "watch", "create", "patch", "delete"],
)];

/// `(group, version, kind, namespaced)` of a resource the controller writes.
fn resource(plural: &str) -> (ApiResource, bool) {
    let (group, version, kind, namespaced) = match plural {
        "serviceaccounts" => ("", "v1", "ServiceAccount", true),
        "services" => ("", "v1", "Service", true),
        "secrets" => ("", "v1", "Secret", true),
        "deployments" => ("apps", "v1", "Deployment", true),
        "poddisruptionbudgets" => ("policy", "v1", "PodDisruptionBudget", true),
        "clusterrolebindings" => (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            false,
        ),
        "rolebindings" => ("rbac.authorization.k8s.io", "v1", "RoleBinding", true),
        other => unreachable!("the controller writes no {other}"),
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind.into(),
        plural: plural.into(),
    };
    (ar, namespaced)
}

/// The controller: its watches, and what it applied and issued lately.
pub struct Controller {
    client: Client,
    config: ControllerConfig,
    roots_pem: String,
    deployments: Store<Deployment>,
    services: Store<Service>,
    bindings: Store<ClusterRoleBinding>,
    role_bindings: Store<RoleBinding>,
    tasks: Vec<JoinHandle<()>>,
    applied: HashMap<(&'static str, String, String), (u64, Instant)>,
    issued: HashMap<(String, String), Instant>,
    last_errors: HashMap<String, String>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Controller {
    /// Starts the watches; `changed` is woken by each of their events.
    pub fn new(client: Client, config: ControllerConfig, changed: Arc<Notify>) -> Self {
        let roots_pem = config
            .signer
            .roots()
            .iter()
            .map(|r| pem("CERTIFICATE", r.as_ref()))
            .collect();
        let mut tasks = Vec::new();
        let deployments =
            watch_managed::<Deployment>(Api::all(client.clone()), &changed, &mut tasks);
        let services = watch_managed::<Service>(Api::all(client.clone()), &changed, &mut tasks);
        let bindings =
            watch_managed::<ClusterRoleBinding>(Api::all(client.clone()), &changed, &mut tasks);
        let role_bindings = watch_managed::<RoleBinding>(
            Api::namespaced(client.clone(), MESH_CONFIG_NAMESPACE),
            &changed,
            &mut tasks,
        );
        Controller {
            client,
            config,
            roots_pem,
            deployments,
            services,
            bindings,
            role_bindings,
            tasks,
            applied: HashMap::new(),
            issued: HashMap::new(),
            last_errors: HashMap::new(),
        }
    }

    /// One pass over `gateways` (and `secrets`, where the identity Secrets
    /// are); `listed`: both lists are complete.
    pub async fn pass(
        &mut self,
        gateways: Vec<Arc<DynamicObject>>,
        secrets: Vec<Arc<DynamicObject>>,
        listed: bool,
    ) {
        let complete = listed
            && is_ready(&self.deployments)
            && is_ready(&self.services)
            && is_ready(&self.bindings)
            && is_ready(&self.role_bindings);
        let view = View {
            gateways,
            secrets,
            deployments: self.deployments.state(),
            services: self.services.state(),
            bindings: self.bindings.state(),
            role_bindings: self.role_bindings.state(),
            complete,
        };
        let now = SystemTime::now();
        let now_text = crate::config::status::rfc3339(now);
        let actions = plan(
            &view,
            &self.config.template,
            &self.roots_pem,
            now,
            &now_text,
        );
        let mut errors = HashMap::new();
        for action in actions {
            let what = describe(&action);
            if let Err(e) = self.carry_out(action, &view).await {
                errors.insert(what, e.to_string());
            }
        }
        // Said once per cause; the pass repeats on every change and resync.
        for (what, e) in &errors {
            if self.last_errors.get(what) != Some(e) {
                tracing::warn!(error = %e, "waypoint controller: {what}");
            }
        }
        self.last_errors = errors;
    }

    async fn carry_out(&mut self, action: PlannedAction, view: &View) -> Result<(), KubeError> {
        match action {
            PlannedAction::Apply(d) => self.apply(d, view).await,
            PlannedAction::Issue { gateway, reason } => self.issue(gateway, reason).await,
            PlannedAction::Status { gateway, body } => {
                let (ar, _) = gateway_resource();
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &gateway.namespace, &ar);
                api.patch_status(&gateway.name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(KubeError::api(format!(
                        "patch status of Gateway {}/{}",
                        gateway.namespace, gateway.name
                    )))?;
                let programmed = &body["status"]["conditions"][1];
                tracing::info!(gateway = %format!("{}/{}", gateway.namespace, gateway.name), programmed = %programmed["status"], reason = %programmed["reason"], addresses = %body["status"]["addresses"], "waypoint status");
                Ok(())
            }
            PlannedAction::Delete {
                resource,
                namespace,
                name,
            } => {
                let api = self.api(resource, &namespace);
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {
                        tracing::info!(resource, namespace = %namespace, name = %name, "deleted what a former waypoint left");
                        self.applied.remove(&(resource, namespace, name));
                        Ok(())
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(KubeError::api(format!(
                        "delete {resource} {namespace}/{name}"
                    ))(e)),
                }
            }
        }
    }

    fn api(&self, plural: &str, namespace: &str) -> Api<DynamicObject> {
        let (ar, namespaced) = resource(plural);
        if namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        }
    }

    /// Server-side apply, unless this exact body was applied lately and is
    /// still there, or the object belongs to someone else.
    async fn apply(&mut self, d: Desired, view: &View) -> Result<(), KubeError> {
        let key = (d.resource, d.namespace.clone(), d.name.clone());
        let hash = hash_of(&d.body);
        let watched_and_present = match d.resource {
            "deployments" => present(&view.deployments, &d),
            "services" => present(&view.services, &d),
            "clusterrolebindings" => present(&view.bindings, &d),
            "rolebindings" => present(&view.role_bindings, &d),
            _ => true,
        };
        if let Some((h, at)) = self.applied.get(&key) {
            if *h == hash && at.elapsed() < REASSERT && watched_and_present {
                return Ok(());
            }
        }
        let api = self.api(d.resource, &d.namespace);
        let what = format!("{} {}/{}", d.resource, d.namespace, d.name);
        if !self.applied.contains_key(&key) {
            let existing = api
                .get_opt(&d.name)
                .await
                .map_err(KubeError::api(format!("get {what}")))?;
            if let Some(o) = existing {
                if o.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED_BY_LABEL))
                    .map(String::as_str)
                    != Some(MANAGED_BY)
                {
                    return Err(KubeError::NotOurs(what));
                }
            }
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&d.name, &params, &Patch::Apply(&d.body))
            .await
            .map_err(KubeError::api(format!("apply {what}")))?;
        tracing::debug!(object = %what, "applied");
        self.applied.insert(key, (hash, Instant::now()));
        Ok(())
    }

    /// Issues the waypoint's certificate with the cluster CA into its Secret.
    async fn issue(&mut self, gw: GatewayRef, reason: &'static str) -> Result<(), KubeError> {
        let key = (gw.namespace.clone(), gw.name.clone());
        if self
            .issued
            .get(&key)
            .is_some_and(|at| at.elapsed() < ISSUE_GRACE)
        {
            return Ok(());
        }
        let identity = Identity {
            trust_domain: self.config.template.trust_domain.clone(),
            namespace: gw.namespace.clone(),
            service_account: gw.name.clone(),
        };
        let (chain, key_pem) = self.config.signer.issue_pem(&identity, LEAF_LIFETIME)?;
        let secret = identity_secret(&gw, &chain, &key_pem, &self.roots_pem);
        let api = self.api("secrets", &gw.namespace);
        api.patch(
            &secret.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret.body),
        )
        .await
        .map_err(KubeError::api(format!(
            "apply Secret {}/{}",
            gw.namespace, secret.name
        )))?;
        tracing::info!(%identity, secret = %format!("{}/{}", gw.namespace, secret.name), reason, "issued a waypoint certificate");
        self.issued.insert(key, Instant::now());
        Ok(())
    }
}

fn gateway_resource() -> (ApiResource, bool) {
    let info = crate::config::kinds::by_kind("Gateway").expect("Gateway is a config kind");
    (crate::kube::resources::api_resource(info), true)
}

fn present<K: kube::Resource>(objects: &[Arc<K>], d: &Desired) -> bool {
    objects.iter().any(|o| {
        o.meta().name.as_deref() == Some(&d.name)
            && (d.namespace.is_empty() || o.meta().namespace.as_deref() == Some(&d.namespace))
    })
}

fn hash_of(body: &serde_json::Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    h.finish()
}

fn describe(action: &PlannedAction) -> String {
    match action {
        PlannedAction::Apply(d) => format!("apply {} {}/{}", d.resource, d.namespace, d.name),
        PlannedAction::Issue { gateway, .. } => format!(
            "issue the certificate of {}/{}",
            gateway.namespace, gateway.name
        ),
        PlannedAction::Status { gateway, .. } => {
            format!("status of Gateway {}/{}", gateway.namespace, gateway.name)
        }
        PlannedAction::Delete {
            resource,
            namespace,
            name,
        } => format!("delete {resource} {namespace}/{name}"),
    }
}

/// Whether a store's first list is in.
pub fn is_ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

/// Watches the objects of `K` egret manages, through `api`.
fn watch_managed<K>(api: Api<K>, changed: &Arc<Notify>, tasks: &mut Vec<JoinHandle<()>>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let writer = reflector::store::Writer::default();
    let store = writer.as_reader();
    let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let changed = changed.clone();
    tasks.push(tokio::spawn(async move {
        let stream = watcher(api, config).default_backoff().reflect(writer);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                    changed.notify_one()
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(resource = K::plural(&()).as_ref(), error = %e, "watch failed; retrying"),
            }
        }
    }));
    store
}

//! The Kubernetes config source: one watch (with a reflector store) per
//! kind; after a change and a short quiet time, everything the stores hold
//! goes through [`ApiReconciler`] and a new snapshot is published on the
//! same kind of channel the folder source feeds. Accepted versions are kept
//! in the agent's state folder (its last good versions across restarts).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::lease::{self, LeaseConfig};
use super::reconcile::{ApiReconciler, KindObjects};
use super::resources::{api_resource, scope, watched, Scope};
use super::status_patch::send;
use super::waypoints::controller::is_ready;
use super::waypoints::{Controller, ControllerConfig};
use crate::config::kinds::KindInfo;
use crate::config::snapshot::Snapshot;

/// Quiet time after the last watch event before recompiling: `kubectl
/// apply -f dir` is several events.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long the first snapshot waits for every kind's initial list; a kind
/// whose CRD is not installed must not keep the node from starting.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// A pass even without events, so a status patch that failed is retried.
const RESYNC: Duration = Duration::from_secs(30);
/// Secret types that never hold TLS material for `credentialName`: not
/// watched, so the agent holds no service-account tokens or Helm releases.
const SECRET_FIELDS: &str = "type!=kubernetes.io/service-account-token,type!=helm.sh/release.v1,type!=kubernetes.io/dockerconfigjson,type!=bootstrap.kubernetes.io/token";

/// Who writes ServiceEntry and Gateway status (and so hands out addresses).
#[derive(Clone, Debug)]
pub enum StatusWriterMode {
    /// This agent, always (one agent per cluster, or tests).
    Always,
    /// Never: this agent only reads addresses other agents published.
    Never,
    /// The holder of a coordination.k8s.io Lease.
    Lease(LeaseConfig),
}

/// Where waypoints run.
#[derive(Clone, Debug)]
pub enum WaypointMode {
    /// This process serves them: a node agent that runs no waypoint
    /// Deployments (a Gateway with `spec.addresses` is still remote), or
    /// `egret waypoint` itself.
    Local,
    /// Each waypoint Gateway runs as its own Deployment and is reached at
    /// the address in its status (or `spec.addresses`); until it has one,
    /// traffic to its services is refused. With a controller config, this
    /// agent runs the controller while it is the elected status writer.
    Deployed(Option<ControllerConfig>),
}

/// How the config source runs.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Who writes status.
    pub writer: StatusWriterMode,
    /// Where waypoints run.
    pub waypoints: WaypointMode,
    /// Where every accepted version is kept (last good across restarts);
    /// `None`: in memory only.
    pub state_dir: Option<PathBuf>,
}

/// One watched kind and its store.
struct Watched {
    info: &'static KindInfo,
    store: Store<DynamicObject>,
    /// Set once the watch has listed the kind.
    listed: Arc<AtomicBool>,
}

/// Starts watching every config kind, waits for their first lists (at most
/// [`READY_TIMEOUT`]), publishes the first snapshot and keeps publishing
/// until every receiver is dropped.
pub async fn start(client: Client, options: SourceOptions) -> watch::Receiver<Arc<Snapshot>> {
    let SourceOptions {
        writer,
        waypoints,
        state_dir,
    } = options;
    let changed = Arc::new(Notify::new());
    let leader = Arc::new(AtomicBool::new(matches!(writer, StatusWriterMode::Always)));
    let mut tasks = Vec::new();
    if let StatusWriterMode::Lease(cfg) = writer {
        tasks.push(lease::spawn(
            client.clone(),
            cfg,
            leader.clone(),
            changed.clone(),
        ));
    }
    let mut kinds = Vec::new();
    for info in watched() {
        let (w, task) = watch_kind(client.clone(), info, changed.clone());
        kinds.push(w);
        tasks.push(task);
    }
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    for w in &kinds {
        let listed = async {
            // A kind found not served never fills its store: its flag says it.
            while !w.listed.load(Ordering::Relaxed) {
                tokio::select! {
                    r = w.store.wait_until_ready() => if r.is_ok() { return },
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        };
        if tokio::time::timeout_at(deadline, listed).await.is_err() {
            tracing::error!(
                resource = %w.info.resource(),
                "not listed in time: its stored versions stand in, or for policies and mesh settings a fail-closed stand-in, until it is (may egret list it?)"
            );
        }
    }
    let (reconciler, controller) = match waypoints {
        WaypointMode::Local => (ApiReconciler::new(), None),
        WaypointMode::Deployed(cfg) => (
            ApiReconciler::deployed(),
            cfg.map(|c| Controller::new(client.clone(), c, changed.clone())),
        ),
    };
    let mut reconciler = match &state_dir {
        Some(dir) => reconciler.with_state(dir),
        None => reconciler,
    };
    let first = reconciler.reconcile(&gather(&kinds), leader.load(Ordering::Relaxed));
    let snapshot = first.snapshot.unwrap_or_default();
    tracing::info!(
        generation = snapshot.generation,
        services = snapshot.services.len(),
        "config from the Kubernetes API"
    );
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    tokio::spawn(async move {
        for p in &first.patches {
            report(send(&client, p).await);
        }
        let mut controller = controller;
        run_controller(controller.as_mut(), &kinds, &leader).await;
        publish_loop(client, reconciler, controller, kinds, leader, changed, tx).await;
        for t in tasks {
            t.abort();
        }
    });
    rx
}

/// Watches one kind into a store; every applied or deleted object, and
/// every completed (re)list, wakes the publisher.
fn watch_kind(
    client: Client,
    info: &'static KindInfo,
    changed: Arc<Notify>,
) -> (Watched, JoinHandle<()>) {
    let resource = api_resource(info);
    let mut config = watcher::Config::default();
    let api: Api<DynamicObject> = match scope(info) {
        Scope::All => Api::all_with(client, &resource),
        Scope::Namespace { namespace, fields } => {
            config = config.fields(fields);
            Api::namespaced_with(client, namespace, &resource)
        }
    };
    let writer = reflector::store::Writer::new(resource);
    let store = writer.as_reader();
    let listed = Arc::new(AtomicBool::new(false));
    let listed_by_watch = listed.clone();
    if info.kind == "Secret" {
        config = config.fields(SECRET_FIELDS);
    }
    let task = tokio::spawn(async move {
        let stream = watcher(api, config).default_backoff().reflect(writer);
        futures::pin_mut!(stream);
        let mut last_error = String::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
                ) => {
                    if matches!(event, Ok(watcher::Event::InitDone)) {
                        listed_by_watch.store(true, Ordering::Relaxed);
                    }
                    last_error.clear();
                    changed.notify_one();
                }
                Ok(_) => {}
                Err(e) if not_served(&e) => {
                    // No such resource (its CRD is not installed): none of
                    // its objects can exist; that is a complete list.
                    if !listed_by_watch.swap(true, Ordering::Relaxed) {
                        tracing::info!(resource = %info.resource(), "not served by the API (CRD not installed): none of its objects exist");
                        changed.notify_one();
                    }
                }
                Err(e) => {
                    // The watcher retries with backoff; say it once per cause.
                    let message = e.to_string();
                    if message != last_error {
                        tracing::warn!(resource = %info.resource(), error = %message, "watch failed; retrying");
                        last_error = message;
                    }
                }
            }
        }
    });
    (
        Watched {
            info,
            store,
            listed,
        },
        task,
    )
}

/// Whether the API answered a list with 404: the resource type is not
/// served (a missing CRD), as opposed to forbidden or unreachable.
fn not_served(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::InitialListFailed(kube::Error::Api(status)) if status.code == 404)
}

fn gather(kinds: &[Watched]) -> Vec<KindObjects> {
    kinds
        .iter()
        .map(|w| KindObjects {
            info: w.info,
            resource: api_resource(w.info),
            objects: w.store.state(),
            listed: w.listed.load(Ordering::Relaxed),
        })
        .collect()
}

/// A controller pass, when this agent runs the controller and is elected.
async fn run_controller(
    controller: Option<&mut Controller>,
    kinds: &[Watched],
    leader: &AtomicBool,
) {
    let Some(controller) = controller else { return };
    if !leader.load(Ordering::Relaxed) {
        return;
    }
    let of = |kind: &str| kinds.iter().find(|w| w.info.kind == kind);
    let (Some(gateways), Some(secrets)) = (of("Gateway"), of("Secret")) else {
        return;
    };
    let listed = is_ready(&gateways.store) && is_ready(&secrets.store);
    controller
        .pass(gateways.store.state(), secrets.store.state(), listed)
        .await;
}

async fn publish_loop(
    client: Client,
    mut reconciler: ApiReconciler,
    mut controller: Option<Controller>,
    kinds: Vec<Watched>,
    leader: Arc<AtomicBool>,
    changed: Arc<Notify>,
    tx: watch::Sender<Arc<Snapshot>>,
) {
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
            _ = tx.closed() => return,
        }
        // Debounce: wait for a quiet moment.
        loop {
            tokio::select! {
                _ = changed.notified() => continue,
                _ = tokio::time::sleep(DEBOUNCE) => break,
            }
        }
        let outcome = reconciler.reconcile(&gather(&kinds), leader.load(Ordering::Relaxed));
        if let Some(snapshot) = outcome.snapshot {
            tracing::info!(
                generation = snapshot.generation,
                "config from the Kubernetes API changed"
            );
            if tx.send(Arc::new(snapshot)).is_err() {
                return;
            }
        }
        for p in &outcome.patches {
            report(send(&client, p).await);
        }
        run_controller(controller.as_mut(), &kinds, &leader).await;
    }
}

fn report(result: Result<(), super::KubeError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "status not written; retrying on the next change or resync");
    }
}

//! The Kubernetes config source: one watch (with a reflector store) per
//! kind; after a change and a short quiet time, everything the stores hold
//! goes through [`ApiReconciler`] and a new snapshot is published on the
//! same kind of channel the folder source feeds.

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
pub enum StatusWriter {
    /// This agent, always (one agent per cluster, or tests).
    Always,
    /// Never: this agent only reads addresses other agents published.
    Never,
    /// The holder of a coordination.k8s.io Lease.
    Lease(LeaseConfig),
}

/// One watched kind and its store.
struct Watched {
    info: &'static KindInfo,
    store: Store<DynamicObject>,
}

/// Starts watching every config kind, waits for their first lists (at most
/// [`READY_TIMEOUT`]), publishes the first snapshot and keeps publishing
/// until every receiver is dropped.
pub async fn start(client: Client, writer: StatusWriter) -> watch::Receiver<Arc<Snapshot>> {
    let changed = Arc::new(Notify::new());
    let leader = Arc::new(AtomicBool::new(matches!(writer, StatusWriter::Always)));
    let mut tasks = Vec::new();
    if let StatusWriter::Lease(cfg) = writer {
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
        if tokio::time::timeout_at(deadline, w.store.wait_until_ready())
            .await
            .is_err()
        {
            tracing::error!(
                resource = %w.info.resource(),
                "not listed in time; starting without it (is its CRD installed, and may egret list it?)"
            );
        }
    }
    let mut reconciler = ApiReconciler::new();
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
        publish_loop(client, reconciler, kinds, leader, changed, tx).await;
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
                    last_error.clear();
                    changed.notify_one();
                }
                Ok(_) => {}
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
    (Watched { info, store }, task)
}

fn gather(kinds: &[Watched]) -> Vec<KindObjects> {
    kinds
        .iter()
        .map(|w| KindObjects {
            info: w.info,
            resource: api_resource(w.info),
            objects: w.store.state(),
        })
        .collect()
}

async fn publish_loop(
    client: Client,
    mut reconciler: ApiReconciler,
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
    }
}

fn report(result: Result<(), super::KubeError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "status not written; retrying on the next change or resync");
    }
}

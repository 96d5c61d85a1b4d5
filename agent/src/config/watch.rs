//! The folder watcher: reload on change, keep each object's last good
//! version, compile, allocate, write status, publish the snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::watch;

use super::allocate::Allocator;
use super::compile::{compile, wanted_addresses};
use super::error::ConfigError;
use super::object::{Object, ObjectKey};
use super::snapshot::Snapshot;
use super::status;
use super::store::{is_manifest, Store};

/// Quiet time after the last file event before reloading: an editor's save
/// or `egret apply` is several events.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Turns the folder's current content into snapshots, remembering the last
/// good version of every object.
#[derive(Debug)]
pub struct Reconciler {
    store: Store,
    state_dir: PathBuf,
    allocator: Allocator,
    last_good: BTreeMap<ObjectKey, Object>,
    file_keys: HashMap<PathBuf, Vec<ObjectKey>>,
    logged: HashSet<String>,
    generation: u64,
}

impl Reconciler {
    /// A reconciler for `config_dir`, keeping its state in `state_dir`.
    pub fn new(config_dir: &Path, state_dir: &Path) -> Result<Self, ConfigError> {
        std::fs::create_dir_all(state_dir).map_err(|e| ConfigError::io(state_dir, e))?;
        Ok(Reconciler {
            store: Store::new(config_dir),
            state_dir: state_dir.to_path_buf(),
            allocator: Allocator::load(&state_dir.join("addresses.json"))?,
            last_good: BTreeMap::new(),
            file_keys: HashMap::new(),
            logged: HashSet::new(),
            generation: 0,
        })
    }

    /// The objects in force.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.last_good.values()
    }

    /// Re-reads the folder. Returns a new snapshot when the objects in force
    /// changed (always on the first call), `None` when nothing did.
    pub fn reload(&mut self) -> Result<Option<Snapshot>, ConfigError> {
        let loaded = self.store.load()?;
        let mut messages = HashSet::new();
        for w in &loaded.warnings {
            if self.logged.insert(w.clone()) {
                tracing::warn!("{w}");
            }
            messages.insert(w.clone());
        }
        let mut next: BTreeMap<ObjectKey, Object> = loaded
            .objects
            .iter()
            .map(|(k, s)| (k.clone(), s.object.clone()))
            .collect();
        // Objects named in bad documents, or in files that no longer parse,
        // keep their last good version.
        let mut kept: Vec<ObjectKey> = loaded.rejected_keys().cloned().collect();
        for file in &loaded.broken_files {
            kept.extend(self.file_keys.get(file).into_iter().flatten().cloned());
        }
        for key in kept {
            if let (std::collections::btree_map::Entry::Vacant(slot), Some(old)) =
                (next.entry(key.clone()), self.last_good.get(&key))
            {
                slot.insert(old.clone());
            }
        }
        for e in &loaded.errors {
            let fate = match &e.key {
                Some(k) if next.contains_key(k) => "the last good version stays in force",
                Some(_) => "it is not in force",
                None => "its objects keep their last good versions",
            };
            let line = format!("{}: {}; {fate}", e.file.display(), e.error);
            if self.logged.insert(line.clone()) {
                tracing::error!(file = %e.file.display(), "{}; {fate}", e.error);
            }
            messages.insert(line);
        }
        // Forget messages that no longer apply, so they are logged again if they return.
        self.logged.retain(|m| messages.contains(m));
        let mut file_keys = loaded.file_keys;
        for file in &loaded.broken_files {
            if let Some(keys) = self.file_keys.remove(file) {
                file_keys.insert(file.clone(), keys);
            }
        }
        self.file_keys = file_keys;

        let unchanged = self.generation > 0
            && next.len() == self.last_good.len()
            && next
                .iter()
                .zip(self.last_good.iter())
                .all(|((k1, a), (k2, b))| k1 == k2 && a.raw == b.raw);
        self.last_good = next;
        if unchanged {
            return Ok(None);
        }
        let wanted = wanted_addresses(self.last_good.values());
        self.allocator.reconcile(&wanted)?;
        self.allocator.save()?;
        let mut snapshot = compile(self.last_good.values(), self.allocator.assigned());
        self.generation += 1;
        snapshot.generation = self.generation;
        let now = status::rfc3339(SystemTime::now());
        let rendered = status::render(
            self.last_good.values(),
            &snapshot,
            self.allocator.assigned(),
            &now,
        );
        status::write(&self.state_dir, rendered)?;
        Ok(Some(snapshot))
    }
}

/// Whether a file event can change what the folder holds.
fn relevant(event: &notify::Event, config_dir: &Path) -> bool {
    !matches!(event.kind, EventKind::Access(_))
        && event
            .paths
            .iter()
            .any(|p| is_manifest(p) || p.as_path() == config_dir)
}

/// Loads and compiles `config_dir`, then watches it and publishes a new
/// snapshot on every change until every receiver is dropped.
pub fn spawn(
    config_dir: PathBuf,
    state_dir: PathBuf,
) -> Result<watch::Receiver<Arc<Snapshot>>, ConfigError> {
    std::fs::create_dir_all(&config_dir).map_err(|e| ConfigError::io(&config_dir, e))?;
    let mut reconciler = Reconciler::new(&config_dir, &state_dir)?;
    let first = reconciler.reload()?.unwrap_or_default();
    let (tx, rx) = watch::channel(Arc::new(first));
    let (events_tx, events) = mpsc::channel();
    let dir = config_dir.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| relevant(&e, &dir)) {
            let _ = events_tx.send(());
        }
    })
    .map_err(|source| ConfigError::Watch {
        path: config_dir.clone(),
        source,
    })?;
    watcher
        .watch(&config_dir, RecursiveMode::NonRecursive)
        .map_err(|source| ConfigError::Watch {
            path: config_dir.clone(),
            source,
        })?;
    std::thread::Builder::new()
        .name("egret-config".into())
        .spawn(move || {
            // The watcher lives as long as the loop.
            let _watcher = watcher;
            watch_loop(reconciler, events, tx);
        })
        .map_err(|e| ConfigError::io(&state_dir, e))?;
    Ok(rx)
}

fn watch_loop(
    mut reconciler: Reconciler,
    events: mpsc::Receiver<()>,
    tx: watch::Sender<Arc<Snapshot>>,
) {
    loop {
        match events.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if !tx.is_closed() => continue,
            Err(_) => return,
        }
        // Debounce: wait for a quiet moment.
        loop {
            match events.recv_timeout(DEBOUNCE) {
                Ok(()) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        match reconciler.reload() {
            Ok(Some(snapshot)) => {
                tracing::info!(generation = snapshot.generation, "config reloaded");
                if tx.send(Arc::new(snapshot)).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("config reload failed, keeping the current config: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::{service_entry, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY};
    use crate::config::snapshot::WaypointBinding;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().to_path_buf();
        let state = crate::config::state_dir(&config);
        (tmp, config, state)
    }

    #[test]
    fn last_good_version_stays_in_force() {
        let (_tmp, config, state) = setup();
        let se_file = config.join("se.yaml");
        std::fs::write(
            config.join("base.yaml"),
            format!("{EGRESS_NAMESPACE}---\n{GATEWAY}"),
        )
        .unwrap();
        std::fs::write(&se_file, SERVICE_ENTRY).unwrap();
        let mut r = Reconciler::new(&config, &state).unwrap();
        let first = r.reload().unwrap().unwrap();
        assert_eq!(first.generation, 1);
        assert_eq!(first.services[0].ports[0].number, 80);
        // Nothing changed: no new snapshot.
        assert!(r.reload().unwrap().is_none());

        // A duplicate port: the last good ServiceEntry stays, nothing else moves.
        let bad = SERVICE_ENTRY.replace(
            "  resolution: DNS",
            "  - name: web\n    number: 80\n  resolution: DNS",
        );
        std::fs::write(&se_file, &bad).unwrap();
        assert!(r.reload().unwrap().is_none());
        // A syntax error in the file: same.
        std::fs::write(&se_file, "apiVersion: [").unwrap();
        assert!(r.reload().unwrap().is_none());
        // A new object that never was valid is simply absent.
        std::fs::write(
            config.join("never.yaml"),
            service_entry("istio-egress", "never", "", "  hosts: ['*']\n"),
        )
        .unwrap();
        assert!(r.reload().unwrap().is_none());
        assert_eq!(r.objects().count(), 3);

        // A good edit goes through.
        std::fs::write(
            &se_file,
            SERVICE_ENTRY.replace("number: 80", "number: 8080"),
        )
        .unwrap();
        let s = r.reload().unwrap().unwrap();
        assert_eq!(s.generation, 2);
        assert_eq!(s.services[0].ports[0].number, 8080);
        assert_eq!(
            s.services[0].vips, first.services[0].vips,
            "addresses stable"
        );

        // Deleting the file removes the object and releases its addresses.
        std::fs::remove_file(&se_file).unwrap();
        let s = r.reload().unwrap().unwrap();
        assert!(s.services.is_empty());
        let saved = std::fs::read_to_string(state.join("addresses.json")).unwrap();
        assert!(!saved.contains("httpbin.org"), "{saved}");
        assert!(!status::status_dir(&state)
            .join("serviceentry.istio-egress.httpbin.org.yaml")
            .exists());
    }

    #[test]
    fn addresses_survive_a_restart() {
        let (_tmp, config, state) = setup();
        let other = service_entry(
            "istio-egress",
            "first",
            "",
            "  hosts: [first.com]\n  resolution: DNS\n",
        );
        std::fs::write(config.join("a.yaml"), &other).unwrap();
        std::fs::write(config.join("b.yaml"), SERVICE_ENTRY).unwrap();
        let before = Reconciler::new(&config, &state)
            .unwrap()
            .reload()
            .unwrap()
            .unwrap();
        let after = Reconciler::new(&config, &state)
            .unwrap()
            .reload()
            .unwrap()
            .unwrap();
        let vips = |s: &Snapshot| -> Vec<_> { s.services.iter().map(|x| x.vips.clone()).collect() };
        assert_eq!(vips(&before), vips(&after));
        assert!(status::read(
            &state,
            &ObjectKey::new("ServiceEntry", "istio-egress", "httpbin.org")
        )
        .is_some());
    }

    #[tokio::test]
    async fn watcher_publishes_changes_within_a_second() {
        let (_tmp, config, state) = setup();
        std::fs::write(config.join("ns.yaml"), EGRESS_NAMESPACE).unwrap();
        let mut rx = crate::config::start(config.clone(), state.clone())
            .await
            .unwrap();
        assert_eq!(rx.borrow().generation, 1);
        assert!(rx.borrow().services.is_empty());
        let wait = |rx: &mut watch::Receiver<Arc<Snapshot>>| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(1), rx.changed())
                    .await
                    .expect("a new snapshot within a second")
                    .unwrap();
                rx.borrow_and_update().clone()
            }
        };
        rx.borrow_and_update();
        std::fs::write(config.join("gw.yaml"), GATEWAY).unwrap();
        let s = wait(&mut rx).await;
        assert_eq!(s.waypoints.len(), 1);
        rx.borrow_and_update();
        std::fs::write(config.join("se.yaml"), SERVICE_ENTRY).unwrap();
        let s = loop {
            // An editor-style write may land as two events; wait for the SE.
            let s = wait(&mut rx).await;
            rx.borrow_and_update();
            if !s.services.is_empty() {
                break s;
            }
        };
        assert!(matches!(s.services[0].waypoint, WaypointBinding::Bound(_)));
        std::fs::remove_file(config.join("se.yaml")).unwrap();
        let s = wait(&mut rx).await;
        assert!(s.services.is_empty());
        assert!(s.generation >= 4);
    }
}

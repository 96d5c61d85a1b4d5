//! The folder watcher: turns file events into the paths that changed (or a
//! full rescan when events were lost) and publishes each new snapshot
//! before writing status.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::watch;

pub use super::reconciler::Reconciler;

use super::error::ConfigError;
use super::snapshot::Snapshot;
use super::store::is_manifest;

/// Quiet time after the last file event before reloading: an editor's save
/// or `egret apply` is several events.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// What a file event asks for.
#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// These manifest paths may have changed.
    Paths(Vec<PathBuf>),
    /// Events were lost, or the folder itself changed: look at everything.
    Rescan,
}

/// The signal of one event, `None` when it cannot change what the folder holds.
fn signal(event: notify::Result<notify::Event>, config_dir: &Path) -> Option<Signal> {
    let Ok(event) = event else {
        return Some(Signal::Rescan);
    };
    if event.need_rescan() || event.paths.iter().any(|p| p.as_path() == config_dir) {
        return Some(Signal::Rescan);
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return None;
    }
    let paths: Vec<PathBuf> = event.paths.into_iter().filter(|p| is_manifest(p)).collect();
    (!paths.is_empty()).then_some(Signal::Paths(paths))
}

/// Loads and compiles `config_dir`, then watches it and publishes a new
/// snapshot on every change until every receiver is dropped.
pub fn spawn(
    config_dir: PathBuf,
    state_dir: PathBuf,
) -> Result<watch::Receiver<Arc<Snapshot>>, ConfigError> {
    std::fs::create_dir_all(&config_dir).map_err(|e| ConfigError::io(&config_dir, e))?;
    let mut reconciler = Reconciler::new(&config_dir, &state_dir)?;
    // Status and last good versions are written by the watcher thread: the
    // first snapshot need not wait for thousands of files.
    let first = reconciler.rescan()?.unwrap_or_default();
    let (tx, rx) = watch::channel(Arc::new(first));
    let (events_tx, events) = mpsc::channel();
    let dir = config_dir.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Some(s) = signal(res, &dir) {
            let _ = events_tx.send(s);
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

/// Paths gathered over one debounce window.
#[derive(Default)]
struct Batch {
    paths: BTreeSet<PathBuf>,
    rescan: bool,
}

impl Batch {
    fn add(&mut self, signal: Signal) {
        match signal {
            Signal::Paths(p) => self.paths.extend(p),
            Signal::Rescan => self.rescan = true,
        }
    }
}

fn watch_loop(
    mut reconciler: Reconciler,
    events: mpsc::Receiver<Signal>,
    tx: watch::Sender<Arc<Snapshot>>,
) {
    write_state(&mut reconciler);
    loop {
        let mut batch = Batch::default();
        match events.recv_timeout(Duration::from_secs(1)) {
            Ok(s) => batch.add(s),
            Err(mpsc::RecvTimeoutError::Timeout) if !tx.is_closed() => continue,
            Err(_) => return,
        }
        // Debounce: wait for a quiet moment.
        loop {
            match events.recv_timeout(DEBOUNCE) {
                Ok(s) => batch.add(s),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        let result = if batch.rescan {
            reconciler.reload()
        } else {
            reconciler.reload_paths(batch.paths)
        };
        match result {
            Ok(Some(snapshot)) => {
                tracing::info!(generation = snapshot.generation, "config reloaded");
                if tx.send(Arc::new(snapshot)).is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("config reload failed, keeping the current config: {e}"),
        }
        // After the snapshot is out: status is for `get`, not for traffic.
        write_state(&mut reconciler);
    }
}

/// Writes status, last good versions and the refused list; a failure is
/// logged (the config in force is unaffected; until it is written, a
/// restart would not know this change's last good versions).
fn write_state(reconciler: &mut Reconciler) {
    if let Err(e) = reconciler.write_status() {
        tracing::error!("writing the agent's state (status, last good versions) failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::object::ObjectKey;
    use crate::config::snapshot::WaypointBinding;
    use crate::config::status;
    use crate::testing::manifests::{service_entry, EGRESS_NAMESPACE, GATEWAY, SERVICE_ENTRY};

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

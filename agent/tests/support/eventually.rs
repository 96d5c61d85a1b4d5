//! Waiting, with a limit, for what a Kubernetes-mode test expects.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use egret::config::snapshot::Snapshot;
use tokio::sync::watch;

/// How long anything may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Waits until a published snapshot satisfies `ok`.
pub async fn snapshot_where(
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
        .unwrap_or_else(|_| {
            let s = rx.borrow();
            panic!(
                "no snapshot with {what}: last services {:?}, waypoints {:?}",
                s.services, s.waypoints
            )
        })
}

/// Polls `probe` every 20 ms until it gives a value.
pub async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let wait = async {
        loop {
            if let Some(v) = probe() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `ok` every 20 ms until it holds.
pub async fn until(what: &str, ok: impl Fn() -> bool) {
    eventually(what, || ok().then_some(())).await
}

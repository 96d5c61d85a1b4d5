//! Drain on shutdown (ztunnel's `drain`): a root holds the one [`Trigger`],
//! every listener and connection a [`Watch`]. Once triggered, listeners
//! stop accepting, HTTP connections wind down (HTTP/1.1 `connection:
//! close`, HTTP/2 GOAWAY) and the root waits, up to its deadline, until no
//! connection is [`InFlight`] any more; what is still open then is closed by
//! the root ending.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// `--drain-timeout` when not given: Istio's default
/// `terminationDrainDuration` and ztunnel's connection termination deadline
/// when no grace period is known (5 s), well below Kubernetes' default
/// `terminationGracePeriodSeconds` (30 s, set explicitly in deploy/): the
/// agent closes what is left itself, before the kubelet's SIGKILL would.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a [`Trigger`] and its [`Watch`]es share.
struct State {
    /// Set once, when the drain starts.
    draining: watch::Sender<bool>,
    /// Connections that have not finished yet.
    open: watch::Sender<usize>,
}

/// Starts the drain; held by the root.
pub struct Trigger(Arc<State>);

/// Tells listeners and connections when the drain starts, and counts the
/// connections it waits for.
#[derive(Clone)]
pub struct Watch(Arc<State>);

/// One connection the drain waits for, until dropped.
#[must_use = "the drain waits for a connection only while its InFlight lives"]
pub struct InFlight(Arc<State>);

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished in time.
    Complete,
    /// The deadline passed with `open` connections left.
    TimedOut { open: usize },
}

/// A trigger and the watch it signals.
pub fn channel() -> (Trigger, Watch) {
    let state = Arc::new(State {
        draining: watch::Sender::new(false),
        open: watch::Sender::new(0),
    });
    (Trigger(state.clone()), Watch(state))
}

impl Trigger {
    /// Signals every watch, then waits until no connection is held, or
    /// for `deadline` at most.
    pub async fn drain(self, deadline: Duration) -> Drained {
        self.0.draining.send_replace(true);
        let mut open = self.0.open.subscribe();
        let all_done = async move {
            // The sender lives in the shared state: never closed.
            let _ = open.wait_for(|n| *n == 0).await;
        };
        match tokio::time::timeout(deadline, all_done).await {
            Ok(_) => Drained::Complete,
            Err(_) => Drained::TimedOut {
                open: *self.0.open.borrow(),
            },
        }
    }
}

impl Watch {
    /// Resolves once the drain has started.
    pub async fn signaled(&self) {
        let mut draining = self.0.draining.subscribe();
        // The sender lives in the shared state this watch holds: never closed.
        let _ = draining.wait_for(|d| *d).await;
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        *self.0.draining.borrow()
    }

    /// Counts one connection until the returned [`InFlight`] is dropped.
    pub fn hold(&self) -> InFlight {
        self.0.open.send_modify(|n| *n += 1);
        InFlight(self.0.clone())
    }
}

impl Default for Watch {
    /// A watch whose drain never starts (its trigger is gone).
    fn default() -> Self {
        channel().1
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("draining", &self.is_draining())
            .field("open", &*self.0.open.borrow())
            .finish()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_drain_with_nothing_open_completes_at_once() {
        let (trigger, watch) = channel();
        let started = tokio::time::Instant::now();
        assert_eq!(
            trigger.drain(Duration::from_secs(5)).await,
            Drained::Complete
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(watch.is_draining());
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_waits_for_held_connections_until_they_end() {
        let (trigger, watch) = channel();
        let held = watch.hold();
        let signaled = tokio::spawn({
            let watch = watch.clone();
            async move { watch.signaled().await }
        });
        tokio::task::yield_now().await;
        assert!(!signaled.is_finished(), "no drain yet");
        let started = tokio::time::Instant::now();
        let draining = tokio::spawn(trigger.drain(Duration::from_secs(5)));
        signaled.await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!draining.is_finished(), "a connection is still held");
        drop(held);
        assert_eq!(draining.await.unwrap(), Drained::Complete);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_gives_up_at_its_deadline() {
        let (trigger, watch) = channel();
        let _held = [watch.hold(), watch.hold()];
        let started = tokio::time::Instant::now();
        assert_eq!(
            trigger.drain(Duration::from_secs(5)).await,
            Drained::TimedOut { open: 2 }
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_default_watch_never_drains() {
        let watch = Watch::default();
        let signaled = tokio::time::timeout(Duration::from_secs(3600), watch.signaled()).await;
        assert!(signaled.is_err());
        assert!(!watch.is_draining());
    }
}

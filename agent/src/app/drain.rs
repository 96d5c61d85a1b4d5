//! Draining on shutdown, as both roots do it: after SIGINT or SIGTERM no
//! listener accepts, HTTP connections are wound down, and open connections
//! get `--drain-timeout` (default
//! [`DEFAULT_DRAIN_TIMEOUT`](crate::net::drain::DEFAULT_DRAIN_TIMEOUT)) to
//! finish before the root closes them by exiting.

use std::time::Duration;

use crate::net::drain::{Drained, Trigger};

/// Starts the drain and waits until every connection has ended, or
/// `timeout` has passed.
pub async fn drain(trigger: Trigger, timeout: Duration) {
    tracing::info!(
        timeout_ms = timeout.as_millis() as u64,
        "draining: no new connections; open ones may finish"
    );
    match trigger.drain(timeout).await {
        Drained::Complete => tracing::info!("drained: every connection finished"),
        Drained::TimedOut { open } => tracing::warn!(
            connections = open,
            "drain timeout: closing the connections still open"
        ),
    }
}

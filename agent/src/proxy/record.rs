//! One record per connection: counted opened when it is made, and when it
//! is dropped — whatever ended the connection (its end, a refusal, a config
//! change, a cancelled task) — its `connection complete` line written and
//! its metrics counted closed, exactly once, with the outcome it was given
//! (ztunnel's `ConnectionResult` does the same on `Drop`).

use std::sync::Arc;

use super::access_log;
use super::context::ConnectionContext;
use super::counted::ByteCounters;
use super::metrics::{proxy_metrics, ConnectionMeter, Reporter};
use super::outcome::{ConnectionOutcome, Failure};

/// What a connection ended without: a task cancelled before it was done.
const NO_OUTCOME: &str = "the connection was dropped before it ended";

/// The access-log line and metrics of one connection.
#[derive(Debug)]
pub struct ConnectionRecord {
    conn: Arc<ConnectionContext>,
    meter: ConnectionMeter,
    bytes: Arc<ByteCounters>,
    outcome: Option<ConnectionOutcome>,
}

impl ConnectionRecord {
    /// Counts `conn` as opened, its metrics reported by `reporter`.
    pub fn open(conn: Arc<ConnectionContext>, reporter: Reporter) -> Self {
        let meter = proxy_metrics().connection_opened(&conn, reporter);
        ConnectionRecord {
            conn,
            meter,
            bytes: Arc::new(ByteCounters::default()),
            outcome: None,
        }
    }

    /// The counters of the bytes the workload sent and received.
    pub fn bytes(&self) -> &Arc<ByteCounters> {
        &self.bytes
    }

    /// How the connection ended; written when the record is dropped.
    pub fn end(&mut self, outcome: ConnectionOutcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for ConnectionRecord {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| ConnectionOutcome::refused(Failure::unflagged(NO_OUTCOME)));
        let (sent, recv) = (self.bytes.sent(), self.bytes.recv());
        proxy_metrics().connection_closed(&self.meter, outcome.flags(), sent, recv);
        access_log::connection_complete(&self.conn, &outcome, &self.bytes);
    }
}

//! DNS over UDP: one datagram per query, each answered on its own task so a
//! slow upstream does not hold up mesh answers.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tracing::debug;

use super::{DnsError, DnsProxy, Transport};

/// Queries in flight per socket; beyond it new ones are dropped (the client
/// retries) rather than letting a flood grow memory without bound.
const MAX_IN_FLIGHT: usize = 1024;

/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

impl DnsProxy {
    /// Serves queries on an already-bound UDP socket (the agent binds one
    /// inside each enrolled workload's netns at 127.0.0.1:15053 and
    /// [::1]:15053) until the socket errors or the task is dropped.
    /// `workload` names the client for logs.
    pub async fn serve_udp(
        self: Arc<Self>,
        socket: UdpSocket,
        workload: Arc<str>,
    ) -> Result<(), DnsError> {
        let socket = Arc::new(socket);
        // Dropping this future drops the set, which aborts queries in flight.
        let mut in_flight = JoinSet::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let (n, client) = received
                        .map_err(|source| DnsError::Listener { transport: "udp", source })?;
                    if in_flight.len() >= MAX_IN_FLIGHT {
                        debug!(%workload, %client, "too many DNS queries in flight, dropping");
                        continue;
                    }
                    let query = buf[..n].to_vec();
                    let (proxy, socket, workload) =
                        (Arc::clone(&self), Arc::clone(&socket), Arc::clone(&workload));
                    in_flight.spawn(async move {
                        let Ok(reply) = proxy.answer_for(&query, Transport::Udp, &workload).await
                        else {
                            return;
                        };
                        if let Err(e) = socket.send_to(&reply, client).await {
                            debug!(%workload, %client, error = %e, "DNS/UDP reply not sent");
                        }
                    });
                }
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
    }
}

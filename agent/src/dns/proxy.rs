//! The DNS proxy: decides, per query, between a local answer from the
//! config snapshot and the upstream nameservers.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::rr::DNSClass;
use tokio::sync::watch;
use tracing::debug;

use super::answer::{self, Decoded};
use super::forward::Forwarder;
use super::stats::{DnsStats, QueryOutcome};
use super::DnsError;
use crate::config::snapshot::Snapshot;

/// The transport a query arrived on; forwarded queries leave on the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Datagrams; replies are truncated to the client's limit.
    Udp,
    /// Length-framed stream; replies go whole.
    Tcp,
}

/// Answers workloads' DNS: mesh hosts with their VIPs, the rest upstream.
#[derive(Debug)]
pub struct DnsProxy {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    forwarder: Forwarder,
    stats: DnsStats,
}

impl DnsProxy {
    /// `snapshots` is the live config; `upstreams` are where non-mesh
    /// queries go.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, upstreams: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            snapshots,
            forwarder: Forwarder::new(upstreams),
            stats: DnsStats::default(),
        })
    }

    /// What the proxy has done so far, for metrics.
    pub fn stats(&self) -> &DnsStats {
        &self.stats
    }

    /// Answers one wire-format query (used by both transports;
    /// unit-testable). An error means the message is dropped unanswered.
    pub async fn answer(&self, query: &[u8], transport: Transport) -> Result<Vec<u8>, DnsError> {
        self.answer_for(query, transport, "-").await
    }

    /// [`DnsProxy::answer`] for the client `workload`, named in logs.
    pub(crate) async fn answer_for(
        &self,
        query: &[u8],
        transport: Transport,
        workload: &str,
    ) -> Result<Vec<u8>, DnsError> {
        let message = match answer::decode(query) {
            Ok(Decoded::Query(message)) => message,
            Ok(Decoded::Reject(reply)) => {
                self.stats.count(QueryOutcome::Malformed);
                debug!(workload, "DNS query rejected as malformed or unsupported");
                return Ok(reply);
            }
            Err(e) => {
                self.stats.count(QueryOutcome::Malformed);
                debug!(workload, error = %e, "DNS message dropped");
                return Err(e);
            }
        };
        let Some(question) = message.query() else {
            // decode() only lets through messages with one question.
            return Err(DnsError::Malformed("no question".into()));
        };
        let name = question.name().to_ascii();
        let qtype = question.query_type();
        // Clone the Arc so the watch lock is not held across the forward.
        let snapshot = Arc::clone(&self.snapshots.borrow());
        let mesh = match question.query_class() {
            DNSClass::IN => snapshot.dns_lookup(&name),
            _ => None,
        };
        let (reply, outcome) = match mesh {
            Some((v4, v6)) => (
                answer::mesh_answer(&message, &v4, &v6)?,
                QueryOutcome::Local,
            ),
            None => match self.forwarder.forward(query, transport).await {
                Ok(reply) => (reply, QueryOutcome::Forwarded),
                Err(e) => {
                    debug!(workload, name, error = %e, "DNS upstreams failed");
                    (answer::servfail(&message)?, QueryOutcome::Failed)
                }
            },
        };
        self.stats.count(outcome);
        debug!(workload, name, %qtype, outcome = outcome.as_str(), "DNS query");
        match transport {
            Transport::Udp => answer::truncate(reply, &message, answer::udp_limit(&message)),
            Transport::Tcp => Ok(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::{self, ServiceFixture};
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    /// A proxy knowing `httpbin.org` whose upstream is a closed loopback port.
    async fn proxy() -> Arc<DnsProxy> {
        let httpbin = ServiceFixture::new("httpbin.org")
            .named("httpbin")
            .vip("240.240.0.2")
            .build();
        let snapshot = fixtures::snapshot([httpbin]);
        let closed = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstream = closed.local_addr().unwrap();
        drop(closed);
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        // The sender may go: the proxy keeps the last snapshot.
        drop(tx);
        DnsProxy::new(rx, vec![upstream])
    }

    fn ask(name: &str, class: DNSClass) -> Vec<u8> {
        let mut question = Query::query(Name::from_ascii(name).unwrap(), RecordType::A);
        question.set_query_class(class);
        let mut message = Message::new();
        message
            .set_id(42)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .add_query(question);
        message.to_vec().unwrap()
    }

    #[tokio::test]
    async fn only_class_in_is_answered_from_the_mesh() {
        let proxy = proxy().await;
        let reply = proxy
            .answer(&ask("httpbin.org.", DNSClass::IN), Transport::Udp)
            .await;
        let reply = Message::from_vec(&reply.unwrap()).unwrap();
        assert_eq!(reply.answers().len(), 1);
        assert!(!reply.recursion_desired(), "RD echoed, also when clear");

        // CHAOS (e.g. version.bind) is not ours: forwarded, and the
        // upstream is down.
        let reply = proxy
            .answer(&ask("httpbin.org.", DNSClass::CH), Transport::Tcp)
            .await;
        let reply = Message::from_vec(&reply.unwrap()).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::ServFail);

        let stats = proxy.stats();
        assert_eq!(
            (stats.answered_local(), stats.failed(), stats.forwarded()),
            (1, 1, 0)
        );
    }

    #[tokio::test]
    async fn malformed_messages_are_counted() {
        let proxy = proxy().await;
        assert!(proxy.answer(&[1, 2], Transport::Udp).await.is_err());
        let mut broken = ask("httpbin.org.", DNSClass::IN);
        broken.pop();
        let reply = proxy.answer(&broken, Transport::Udp).await.unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.response_code(), ResponseCode::FormErr);
        assert_eq!(proxy.stats().malformed(), 2);
    }
}

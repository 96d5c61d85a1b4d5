//! Label sets of the Istio-named proxy metrics. The source/destination half
//! is interned once per distinct peer pair ([`super::peers`]); the per-request
//! half is a few integers, so a request's label set is built without
//! allocating and hashed by pointer.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use crate::proxy::ResponseFlags;

/// Which side of the connection reported a metric (Istio's `reporter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The waypoint that applied L7 policy and routing.
    Waypoint,
    /// The workload's side: an L4-only hop (no waypoint, or a tunnel to a
    /// waypoint elsewhere), as ztunnel reports it.
    Source,
}

impl Reporter {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reporter::Waypoint => "waypoint",
            Reporter::Source => "source",
        }
    }
}

/// Who talked to what: the labels every proxy metric shares.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PeerLabels {
    pub reporter: Reporter,
    pub source_workload: Box<str>,
    pub source_workload_namespace: Box<str>,
    /// `spiffe://<td>/ns/<ns>/sa/<sa>`.
    pub source_principal: Box<str>,
    /// The ServiceEntry host.
    pub destination_service: Box<str>,
    pub destination_service_namespace: Box<str>,
}

impl EncodeLabelSet for PeerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let labels: [(&str, &str); 6] = [
            ("reporter", self.reporter.as_str()),
            ("source_workload", &self.source_workload),
            ("source_workload_namespace", &self.source_workload_namespace),
            ("source_principal", &self.source_principal),
            ("destination_service", &self.destination_service),
            (
                "destination_service_namespace",
                &self.destination_service_namespace,
            ),
        ];
        for label in labels {
            label.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// An interned [`PeerLabels`]: one allocation per distinct value, so equality
/// and hashing go by address. Sound because the interner and every metric
/// family hold their clones forever: an address is never reused for another
/// value.
#[derive(Clone, Debug)]
pub struct Peers(pub(super) Arc<PeerLabels>);

impl Peers {
    /// The labels.
    pub fn labels(&self) -> &PeerLabels {
        &self.0
    }
}

impl PartialEq for Peers {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Peers {}

impl Hash for Peers {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

/// `istio_requests_total` and `istio_request_duration_milliseconds`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub peers: Peers,
    /// `http` or `grpc`.
    pub request_protocol: &'static str,
    pub response_code: u16,
    /// As the access log prints them (`-` when none).
    pub response_flags: ResponseFlags,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.peers.labels().encode(encoder)?;
        ("request_protocol", self.request_protocol).encode(encoder.encode_label())?;
        ("response_code", self.response_code).encode(encoder.encode_label())?;
        let flags = self.response_flags.to_string();
        ("response_flags", flags.as_str()).encode(encoder.encode_label())
    }
}

/// `istio_tcp_connections_opened_total`: known at accept, so no flags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpLabels {
    pub peers: Peers,
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.peers.labels().encode(encoder)?;
        ("request_protocol", "tcp").encode(encoder.encode_label())
    }
}

/// The closed, sent and received TCP metrics: counted when the connection
/// ends, with the flags of its `connection complete` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpClosedLabels {
    pub peers: Peers,
    pub response_flags: ResponseFlags,
}

impl EncodeLabelSet for TcpClosedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.peers.labels().encode(encoder)?;
        ("request_protocol", "tcp").encode(encoder.encode_label())?;
        let flags = self.response_flags.to_string();
        ("response_flags", flags.as_str()).encode(encoder.encode_label())
    }
}

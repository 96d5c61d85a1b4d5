//! How much one workload may send and hold open at the waypoint. Defaults
//! are Envoy's; where Envoy has no bound (or an unsafe one for a proxy that
//! faces workloads directly) the value is its edge-proxy best practice
//! ("Configuring Envoy as an edge proxy"), and the reason is written here.

use std::time::Duration;

/// Envoy's `max_request_headers_kb` (60 KiB).
pub const DEFAULT_MAX_REQUEST_HEADERS_BYTES: usize = 60 * 1024;
/// Envoy's `max_headers_count`.
pub const DEFAULT_MAX_REQUEST_HEADERS: usize = 100;
/// Envoy's `request_headers_timeout` is off by default, which lets a client
/// hold a connection forever with a half-sent request (slowloris); 10 s is
/// Envoy's edge best practice.
pub const DEFAULT_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Envoy's HTTP connection manager `idle_timeout` (1 h): a downstream
/// connection with no request in flight is closed after it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's `stream_idle_timeout` (5 min): a request with no bytes moving is
/// ended with 408 (`SI`) before its response headers, or reset after them.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Envoy's cluster `idle_timeout` (1 h): a pooled upstream connection no
/// workload has used for this long is closed.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default is unbounded (2^31 - 1); 100 is its edge best practice
/// and what ztunnel's pooled HBONE connections carry.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Envoy has no per-client connection cap; one is needed so that one
/// workload cannot take every file descriptor of the agent. 16,384 leaves
/// room for the 10,000 idle connections of `cargo xtask bench`.
pub const DEFAULT_MAX_CONNECTIONS_PER_WORKLOAD: usize = 16_384;
/// Envoy's global downstream connection limit is unset by default; the
/// agent caps all workloads together at 65,536 for the same reason.
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;

/// The bounds on downstream HTTP requests and connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line and header fields of one request, in bytes (431 past it).
    pub max_request_headers_bytes: usize,
    /// Header fields of one request (431 past it).
    pub max_request_headers: usize,
    /// From the first byte of a request to the end of its headers (408).
    pub request_headers_timeout: Duration,
    /// A downstream connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// A request with no activity either way is ended after this.
    pub stream_idle_timeout: Duration,
    /// A pooled upstream connection unused for this long is closed.
    pub upstream_idle_timeout: Duration,
    /// HTTP/2 streams one downstream connection may have open.
    pub max_concurrent_streams: u32,
    /// Connections one workload may hold open through the waypoint.
    pub max_connections_per_workload: usize,
    /// Connections all workloads together may hold open.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_headers_bytes: DEFAULT_MAX_REQUEST_HEADERS_BYTES,
            max_request_headers: DEFAULT_MAX_REQUEST_HEADERS,
            request_headers_timeout: DEFAULT_REQUEST_HEADERS_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
            upstream_idle_timeout: DEFAULT_UPSTREAM_IDLE_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connections_per_workload: DEFAULT_MAX_CONNECTIONS_PER_WORKLOAD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

//! Why a DNS operation failed.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of the DNS proxy, its upstream forwarder and the resolver.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listening socket failed; the server it belonged to stops.
    #[error("DNS {transport} listener failed: {source}")]
    Listener {
        /// `udp` or `tcp`.
        transport: &'static str,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The query is too broken to answer at all (not even its header
    /// parses, or it is itself a response); it is dropped.
    #[error("unanswerable DNS message: {0}")]
    Malformed(String),
    /// Encoding a response failed (a bug or an oversized answer).
    #[error("encoding DNS response: {0}")]
    Encode(#[source] hickory_proto::error::ProtoError),
    /// One upstream did not give a usable answer.
    #[error("upstream {upstream}: {reason}")]
    Upstream {
        /// The nameserver tried.
        upstream: SocketAddr,
        /// What went wrong with it.
        reason: String,
    },
    /// No upstream gave a usable answer (or none is configured).
    #[error("all {count} DNS upstreams failed")]
    UpstreamsFailed {
        /// How many upstreams were tried.
        count: usize,
    },
    /// The resolver needs at least one nameserver.
    #[error("no DNS upstreams configured; pass --dns-upstream ADDR")]
    NoUpstreams,
    /// The host's resolv.conf names no usable nameserver.
    #[error("{} lists no nameserver; pass --dns-upstream ADDR", path.display())]
    NoNameservers {
        /// The file read.
        path: PathBuf,
    },
    /// The host's resolv.conf could not be read.
    #[error("reading {}: {source}", path.display())]
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// Resolving an upstream endpoint name failed.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The name looked up.
        host: String,
        /// The resolver's reason.
        #[source]
        source: hickory_resolver::error::ResolveError,
    },
}

//! Why an HBONE connection or tunnel failed; each names the peer.

use std::net::SocketAddr;

use crate::identity::IdentityError;
use crate::net::ConnectError;

/// Failures of HBONE, on either side.
#[derive(Debug, thiserror::Error)]
pub enum HboneError {
    /// The certificates to present or trust could not be had.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The TLS handshake with the peer failed (refused certificate, wrong
    /// protocol, timeout).
    #[error("TLS handshake with {peer}: {source}")]
    Tls {
        /// The other side.
        peer: SocketAddr,
        /// The handshake's error.
        #[source]
        source: std::io::Error,
    },
    /// The peer's certificate held no SPIFFE ID of our trust domain.
    #[error("peer {peer} presented no SPIFFE identity of trust domain {trust_domain}")]
    NoPeerIdentity {
        /// The other side.
        peer: SocketAddr,
        /// The trust domain wanted.
        trust_domain: String,
    },
    /// No waypoint is served at the address the peer connected to.
    #[error("no waypoint is served at {local} (connection from {peer})")]
    NoWaypoint {
        /// Our address the peer reached.
        local: SocketAddr,
        /// The other side.
        peer: SocketAddr,
    },
    /// HTTP/2 failed on the connection or stream.
    #[error("HTTP/2 with {peer}: {source}")]
    H2 {
        /// The other side.
        peer: SocketAddr,
        /// h2's error.
        #[source]
        source: h2::Error,
    },
    /// The TCP connection to the waypoint could not be made.
    #[error("connecting to waypoint {server}: {source}")]
    Connect {
        /// The waypoint's HBONE address.
        server: SocketAddr,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// The waypoint answered the CONNECT with another status than 200.
    #[error("waypoint {server} answered CONNECT {target} with {status}")]
    Refused {
        /// The waypoint's HBONE address.
        server: SocketAddr,
        /// The target asked for.
        target: SocketAddr,
        /// Its answer.
        status: http::StatusCode,
    },
}

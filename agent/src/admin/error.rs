//! Errors of the admin endpoint.

use std::net::SocketAddr;

/// Why the admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address is taken or not local (another agent in this netns?).
    #[error("admin endpoint cannot listen on {addr}: {source} (pass --admin ADDR)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

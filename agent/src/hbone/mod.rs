//! HBONE: HTTP/2 CONNECT over mutual TLS with SPIFFE identities on port
//! 15008, wire-compatible with Istio's ztunnel. Transport only: what a
//! tunnel carries is the proxy's business.
//!
//! [`server`] accepts tunnels and hands each CONNECT stream to its
//! [`server::Handler`]; [`client`] opens tunnels over the connections of its
//! [`pool`]. [`request`] is the CONNECT on the wire, [`stream`] a stream as
//! bytes, [`splice`] carries it to a plain stream without copies.

pub mod client;
pub mod error;
pub mod pool;
pub mod request;
pub mod server;
pub mod splice;
pub mod stream;

pub use self::client::HboneClient;
pub use self::error::HboneError;
pub use self::server::{Connect, Handler, HboneServer, Peer};

/// The HBONE port.
pub const HBONE_PORT: u16 = 15008;
/// Per-stream receive window (ztunnel's `HTTP2_STREAM_WINDOW_SIZE` default).
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Per-connection receive window (`HTTP2_CONNECTION_WINDOW_SIZE`).
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// Largest frame accepted (`HTTP2_FRAME_SIZE`).
pub const MAX_FRAME: u32 = 1024 * 1024;
/// Streams per pooled client connection (`POOL_MAX_STREAMS_PER_CONNECTION`).
pub const MAX_STREAMS_PER_CONNECTION: usize = 100;
/// Concurrent streams a server accepts per connection (ztunnel's server).
pub const SERVER_MAX_STREAMS: u32 = 200;

//! TLS origination: the waypoint speaks TLS to an upstream as a
//! DestinationRule's `trafficPolicy.tls` says, while the workload speaks
//! plain HTTP to the waypoint.
//!
//! [`settings`] turns a rule + request into what one handshake needs,
//! [`material`] loads key material (files reloaded when they change, Secrets
//! from the snapshot), [`roots`] holds the default trust anchors, [`verify`]
//! checks the server's certificate, and [`origin`] caches client configs
//! and runs the handshake.

pub mod error;
pub mod material;
pub mod origin;
pub mod roots;
pub mod settings;
pub mod verify;

pub use self::error::TlsError;
pub use self::origin::{TlsOrigin, UpstreamStream};
pub use self::roots::{read_extra_roots, DefaultRoots};
pub use self::settings::OriginTls;

/// The crypto provider of every TLS client egret makes (ring).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

//! The proxy: captured connections and HBONE tunnels in, policy and
//! routing, upstream out.
//!
//! Follow a connection: [`outbound`] takes one captured on this node,
//! [`inbound`] one arriving through an HBONE tunnel; its [`context`] says
//! what it is, [`route`] where it goes: [`http`] serves HTTP ports through
//! its request pipeline, [`passthrough`] carries TLS ports by their SNI
//! without terminating TLS, [`l4`] copies everything else, [`tunnel`]
//! sends it to a waypoint that runs elsewhere; addresses come from
//! [`endpoint`]. Each connection has one [`record`]: its [`access_log`]
//! line and its [`metrics`], with the [`outcome`] and [`flags`] saying why. Every request is decided on the
//! config in force when it arrives, and [`recheck`] closes open
//! connections a later config no longer allows.

pub mod access_log;
pub mod admission;
pub mod authorize;
pub mod context;
pub mod counted;
pub mod endpoint;
pub mod flags;
pub mod http;
pub mod inbound;
pub mod l4;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod outcome;
pub mod passthrough;
pub mod pool;
pub mod recheck;
pub mod record;
pub mod route;
pub mod tls;
pub mod tunnel;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::snapshot::Snapshot;

pub use self::flags::{ResponseFlag, ResponseFlags};
pub use self::inbound::{Inbound, Serves};
pub use self::outbound::handle_outbound;

/// Resolves upstream host names (implemented by the lead over dns::Resolver).
pub trait ResolveHost: Send + Sync + 'static {
    /// All addresses of `host`, in the order to try them.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// Everything the waypoint needs, shared by all connections.
pub struct ProxyContext {
    /// The current config; each connection reads it at accept, each HTTP
    /// request when it arrives, and open connections on every change.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Resolver for `resolution: DNS` hosts and endpoint names.
    pub resolver: Arc<dyn ResolveHost>,
    /// Trust domain of the SPIFFE identities in access log lines.
    pub trust_domain: String,
    /// Tunnels to remote waypoints (Gateways with `spec.addresses`); `None`
    /// where there is no identity to present (such services are refused).
    pub hbone: Option<Arc<crate::hbone::HboneClient>>,
    /// Bounds on what workloads may send and hold open.
    pub limits: limits::Limits,
    /// The connections held against the caps of `limits`.
    pub admission: Arc<admission::Admission>,
}

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
pub mod inputs;
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

pub use self::flags::{ResponseFlag, ResponseFlags};
pub use self::inbound::{Inbound, Serves};
pub use self::inputs::{ProxyContext, ResolveHost};
pub use self::outbound::handle_outbound;

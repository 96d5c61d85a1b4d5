//! What both roots (the node agent, [`crate::node`], and the standalone
//! waypoint, [`crate::waypoint`]) compose the same way: the proxy
//! ([`proxy`]), the HBONE server in front of it ([`hbone`]), upstream name
//! resolution
//! ([`resolver`]), what `/metrics` reads at scrape time ([`readings`]),
//! the shutdown signal ([`signal`]) and the drain that follows it
//! ([`drain`]).

pub mod drain;
pub mod hbone;
pub mod proxy;
pub mod readings;
pub mod resolver;
pub mod signal;

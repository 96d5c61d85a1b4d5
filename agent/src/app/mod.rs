//! What both roots (the node agent, [`crate::node`], and the standalone
//! waypoint, [`crate::waypoint`]) compose the same way: the proxy
//! ([`proxy`]), the HBONE server in front of it ([`hbone`]), upstream name
//! resolution
//! ([`resolver`]), what `/metrics` reads at scrape time ([`readings`]) and
//! the shutdown signal ([`signal`]).

pub mod hbone;
pub mod proxy;
pub mod readings;
pub mod resolver;
pub mod signal;

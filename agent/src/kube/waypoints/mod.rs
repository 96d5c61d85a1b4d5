//! The waypoint controller: for every Gateway of class `istio-waypoint`,
//! the elected agent runs the waypoint as its own Deployment and Service
//! (as istiod does for Istio's waypoints), hands it its certificate from
//! the cluster CA, and publishes the Service's address in the Gateway's
//! status once a replica is available; node agents tunnel there over HBONE.
//!
//! [`render`] makes the objects, [`identity`] decides when the certificate
//! is due, [`status`] renders the Gateway's status, [`plan`] decides a
//! pass from what the API holds, and [`controller`] carries it out.

pub mod controller;
pub mod identity;
pub mod plan;
pub mod render;
pub mod status;

pub use controller::{Controller, ControllerConfig};
pub use render::WaypointTemplate;

//! egret: eBPF-accelerated egress enforcement for Istio ambient mesh.
//!
//! Follow a connection by module: [`kernel`] catches it, [`workload`] owns the
//! listener it lands on, [`proxy`] carries it upstream, [`config`] says what
//! is allowed, [`dns`] hands out the addresses that get it caught.

pub mod admin;
pub mod app;
pub mod authz;
pub mod cli;
pub mod config;
pub mod control;
pub mod dns;
pub mod hbone;
pub mod identity;
pub mod kernel;
pub mod kube;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod node;
pub mod proxy;
pub mod route;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod verdicts;
pub mod waypoint;
pub mod workload;

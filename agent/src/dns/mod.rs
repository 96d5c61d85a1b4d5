//! DNS proxy: answers ServiceEntry hosts with their VIPs, forwards the rest.
//!
//! A query arrives on `udp` or `tcp`, is decoded and answered in `proxy`
//! (local answers built in `answer`, the rest relayed by `forward`) on
//! sockets from [`crate::net::socket`] that carry egret's mark.
//! [`Resolver`] resolves endpoint names for the waypoint through the same
//! upstreams; [`system_upstreams`] finds the host's.

mod answer;
mod error;
mod forward;
mod proxy;
mod resolv_conf;
mod resolver;
mod runtime;
mod stats;
mod tcp;
mod udp;

pub use error::DnsError;
pub use proxy::{DnsProxy, Transport};
pub use resolv_conf::{parse_resolv_conf, system_upstreams};
pub use resolver::Resolver;
pub use stats::DnsStats;

//! Harness for egret's end-to-end suites.
//!
//! Every test builds a sealed "node": a network namespace with no route off
//! the machine, where the egret agent and a dnsmasq run, wired by a veth to
//! an "external" namespace where a real httpbin plays httpbin.org. Workloads
//! are started by `egret exec` and talk only to hosts inside these
//! namespaces, so a bug ends in ENETUNREACH, never in traffic off the VM.
//!
//! These tests need root (eBPF, netns). They fail, loudly, when they cannot
//! run: they never skip.

pub mod bin;
pub mod node;
pub mod process;
pub mod tls;
pub mod two_nodes;
pub mod walkthrough;
pub mod workload;

pub use node::{Node, NodeOptions, TlsHttpbin};

/// The walkthrough's manifests, byte for byte (deploy/examples/walkthrough).
pub mod manifests {
    pub const BOOKINFO_NAMESPACE: &str =
        include_str!("../../deploy/examples/walkthrough/step1-bookinfo-namespace.yaml");
    pub const GATEWAY: &str = include_str!("../../deploy/examples/walkthrough/step2-gateway.yaml");
    pub const SERVICE_ENTRY: &str =
        include_str!("../../deploy/examples/walkthrough/step3-serviceentry.yaml");
    pub const AUTHORIZATION_POLICY: &str =
        include_str!("../../deploy/examples/walkthrough/step4a-authorizationpolicy.yaml");
    pub const VIRTUAL_SERVICE: &str =
        include_str!("../../deploy/examples/walkthrough/step4b-virtualservice.yaml");
    pub const TLS_ORIGINATION: &str =
        include_str!("../../deploy/examples/walkthrough/step4c-tls-origination.yaml");
}

//! Kernel verdicts for people: the access-log line of each denial and the
//! `egret monitor` record of each event, both with the workload's identity.

use std::net::SocketAddr;

use egret_common::{Reason, DNS_PORT};
use serde::{Deserialize, Serialize};

use crate::identity::WorkloadInfo;
use crate::kernel::events::{KernelEvent, Verdict};

/// A kernel verdict as `egret monitor` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEvent {
    /// RFC 3339 time the agent read it.
    pub time: String,
    /// `denied` or `redirected`.
    pub verdict: String,
    /// Why (denials: `not_in_registry`, `dns_elsewhere`, …; redirects:
    /// `service` or `dns`).
    pub reason: String,
    /// `namespace/name` of the workload (`-` when unknown).
    pub workload: String,
    /// Its SPIFFE identity (`-` when unknown).
    pub identity: String,
    /// Destination `ip:port`.
    pub dst: String,
    /// `tcp`, `udp`, …
    pub proto: String,
    /// Which kernel hook: `connect`, `sendmsg`, `egress`, `socket`.
    pub hook: String,
    /// Process id and command name of the sender (0 / empty when unknown).
    pub pid: u32,
    pub comm: String,
}

/// Target of kernel denial lines (the same as connection lines: a denied
/// connect is a connection that never happened).
pub const DENIAL_TARGET: &str = "access";

/// Writes the access-log line of a kernel denial.
pub fn log_denial(
    event: &KernelEvent,
    reason: Reason,
    workload: Option<&WorkloadInfo>,
    trust_domain: &str,
) {
    let identity = workload.map(|w| w.identity(trust_domain).to_string());
    tracing::event!(
        target: "access",
        tracing::Level::INFO,
        src.workload = workload.map(|w| w.name.as_str()),
        src.namespace = workload.map(|w| w.namespace.as_str()),
        src.identity = identity.as_deref(),
        dst.addr = %SocketAddr::new(event.addr, event.port),
        direction = "outbound",
        protocol = event.proto.as_str(),
        hook = event.hook,
        pid = event.pid,
        comm = event.comm.as_str(),
        reason = reason.name(),
        "connection denied by the kernel"
    );
}

/// A kernel event with its workload, as `egret monitor` shows it.
pub fn describe(
    event: &KernelEvent,
    workload: Option<&WorkloadInfo>,
    trust_domain: &str,
) -> MonitorEvent {
    let (verdict, reason) = match event.verdict {
        Verdict::Denied(r) => ("denied", r.name().to_string()),
        Verdict::Redirected(DNS_PORT) => ("redirected", "dns".to_string()),
        Verdict::Redirected(_) => ("redirected", "service".to_string()),
    };
    MonitorEvent {
        time: crate::logging::now_rfc3339(),
        verdict: verdict.into(),
        reason,
        workload: workload.map_or("-".into(), |w| format!("{}/{}", w.namespace, w.name)),
        identity: workload.map_or("-".into(), |w| w.identity(trust_domain).to_string()),
        dst: SocketAddr::new(event.addr, event.port).to_string(),
        proto: event.proto.clone(),
        hook: event.hook.into(),
        pid: event.pid,
        comm: event.comm.clone(),
    }
}

/// One line of `egret monitor` text output.
pub fn text_line(e: &MonitorEvent) -> String {
    let who = if e.comm.is_empty() {
        String::new()
    } else {
        format!(" pid={} comm={}", e.pid, e.comm)
    };
    format!(
        "{} {} {} ({}){} -> {} {} {} reason={}",
        e.time,
        e.verdict.to_uppercase(),
        e.workload,
        e.identity,
        who,
        e.dst,
        e.proto,
        e.hook,
        e.reason
    )
}

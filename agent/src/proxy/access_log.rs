//! Access log lines in ztunnel's shape: one `request complete` line per HTTP
//! request (target `http access`) and one `connection complete` line per
//! connection (target `access`). Field order follows ztunnel's
//! `src/proxy/metrics.rs`; [`crate::logging`] renders them. A request's
//! line and its metrics come from the same call, a connection's from its
//! [`super::record`], so a metric and its log line cannot disagree.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::context::ConnectionContext;
use super::counted::ByteCounters;
use super::flags::ResponseFlags;
use super::metrics::{ProxyMetrics, RequestMeter};
use super::outcome::ConnectionOutcome;

/// Target of per-request lines.
pub const HTTP_ACCESS_TARGET: &str = "http access";
/// Target of per-connection lines.
pub const CONNECTION_ACCESS_TARGET: &str = "access";

/// The request-line facts of one HTTP request, taken before any stage
/// rewrites it (the log shows what the workload sent).
#[derive(Debug)]
pub struct RequestRecord {
    /// Request method.
    pub method: http::Method,
    /// Path and query as sent.
    pub path: String,
    /// `Host` header (or the URI's authority).
    pub host: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// `HTTP1` or `HTTP2`, as ztunnel spells the protocol.
    pub protocol: &'static str,
    /// When the request head was received.
    pub started: Instant,
}

impl RequestRecord {
    /// Takes the facts from a request head.
    pub fn from_head(head: &http::request::Parts) -> Self {
        let header = |name: http::header::HeaderName| {
            head.headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        RequestRecord {
            method: head.method.clone(),
            path: head
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            host: header(http::header::HOST)
                .or_else(|| head.uri.authority().map(|a| a.to_string())),
            user_agent: header(http::header::USER_AGENT),
            protocol: if head.version == http::Version::HTTP_2 {
                "HTTP2"
            } else {
                "HTTP1"
            },
            started: Instant::now(),
        }
    }
}

/// What every `request complete` line and request metric of one connection
/// shares, worked out once per connection instead of once per request.
#[derive(Debug)]
pub struct ConnectionLog {
    metrics: Arc<ProxyMetrics>,
    names: PeerNames,
    meter: RequestMeter,
}

impl ConnectionLog {
    /// The shared parts for `conn`'s requests, counted in `metrics`.
    pub fn of(metrics: Arc<ProxyMetrics>, conn: &ConnectionContext) -> Self {
        ConnectionLog {
            names: PeerNames::of(conn),
            meter: metrics.request_meter(conn),
            metrics,
        }
    }
}

/// Emits the `request complete` line and counts the request.
pub fn request_complete(
    conn: &ConnectionContext,
    shared: &ConnectionLog,
    upstream: Option<SocketAddr>,
    request: &RequestRecord,
    status: http::StatusCode,
    flags: ResponseFlags,
    authz: Option<&crate::authz::PolicyDecision>,
) {
    let elapsed = request.started.elapsed();
    shared
        .metrics
        .request(&shared.meter, status, flags, elapsed);
    let peers = Peers::of(conn, &shared.names);
    let authz = authz.map(AuthzFields::of).unwrap_or_default();
    tracing::event!(
        target: "http access",
        tracing::Level::INFO,
        src.addr = %conn.src,
        src.workload = conn.workload.name.as_str(),
        src.namespace = conn.workload.namespace.as_str(),
        src.identity = peers.src_identity,
        dst.addr = upstream.map(tracing::field::display),
        dst.hbone_addr = %conn.orig_dst,
        dst.service = peers.service,
        dst.workload = peers.waypoint_name,
        dst.namespace = peers.waypoint_namespace,
        dst.identity = peers.waypoint_identity,
        direction = "outbound",
        method = %request.method,
        path = request.path.as_str(),
        protocol = %request.protocol,
        response_code = status.as_u16(),
        host = request.host.as_deref(),
        user_agent = request.user_agent.as_deref(),
        duration = millis(elapsed).as_str(),
        response_flags = flags.non_empty().map(tracing::field::display),
        authz.decision = authz.decision,
        authz.policy = authz.policy.as_deref(),
        authz.reason = authz.reason,
        authz.audit = authz.audit.as_deref(),
        authz.dry_run = authz.dry_run.as_deref(),
        "request complete"
    );
}

/// Emits the `connection complete` line (its [`super::record`] counts it).
pub fn connection_complete(
    conn: &ConnectionContext,
    outcome: &ConnectionOutcome,
    bytes: &ByteCounters,
) {
    let names = PeerNames::of(conn);
    let peers = Peers::of(conn, &names);
    tracing::event!(
        target: "access",
        tracing::Level::INFO,
        src.addr = %conn.src,
        src.workload = conn.workload.name.as_str(),
        src.namespace = conn.workload.namespace.as_str(),
        src.identity = peers.src_identity,
        dst.addr = outcome.upstream.map(tracing::field::display),
        dst.hbone_addr = %conn.orig_dst,
        dst.service = peers.service,
        dst.workload = peers.waypoint_name,
        dst.namespace = peers.waypoint_namespace,
        dst.identity = peers.waypoint_identity,
        direction = "outbound",
        sni = conn.sni(),
        bytes_sent = bytes.sent(),
        bytes_recv = bytes.recv(),
        duration = millis(conn.started.elapsed()).as_str(),
        response_flags = outcome.flags().non_empty().map(tracing::field::display),
        error = outcome.error(),
        "connection complete"
    );
}

/// The identities a connection's lines print, rendered once.
#[derive(Debug)]
struct PeerNames {
    src_identity: String,
    waypoint_identity: Option<String>,
}

impl PeerNames {
    fn of(conn: &ConnectionContext) -> Self {
        PeerNames {
            src_identity: conn.src_identity.to_string(),
            waypoint_identity: conn.waypoint().map(|w| w.identity.to_string()),
        }
    }
}

/// The `src.*`/`dst.*` values both lines share, as the strings they print.
struct Peers<'a> {
    src_identity: &'a str,
    service: Option<&'a str>,
    waypoint_name: Option<&'a str>,
    waypoint_namespace: Option<&'a str>,
    waypoint_identity: Option<&'a str>,
}

impl<'a> Peers<'a> {
    fn of(conn: &'a ConnectionContext, names: &'a PeerNames) -> Self {
        Peers {
            src_identity: &names.src_identity,
            service: conn.service().map(|s| s.host.as_str()),
            waypoint_name: conn.waypoint().map(|w| w.reference.name.as_str()),
            waypoint_namespace: conn.waypoint().map(|w| w.reference.namespace.as_str()),
            waypoint_identity: names.waypoint_identity.as_deref(),
        }
    }
}

/// `13ms`, as ztunnel prints durations.
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The access log's view of an authorization decision: which policy decided
/// (or that none allowed), and the AUDIT / dry-run policies that matched.
#[derive(Debug, Default)]
struct AuthzFields {
    decision: Option<&'static str>,
    policy: Option<String>,
    reason: Option<&'static str>,
    audit: Option<String>,
    dry_run: Option<String>,
}

impl AuthzFields {
    fn of(d: &crate::authz::PolicyDecision) -> Self {
        let join = |refs: Vec<String>| (!refs.is_empty()).then(|| refs.join(","));
        AuthzFields {
            decision: Some(if d.allowed { "allow" } else { "deny" }),
            policy: d.policy.as_ref().map(ToString::to_string),
            reason: Some(d.reason.as_str()),
            audit: join(d.audit.iter().map(ToString::to_string).collect()),
            dry_run: join(
                d.dry_run
                    .iter()
                    .map(|(p, allow)| {
                        format!("{p}:{}", if *allow { "would-allow" } else { "would-deny" })
                    })
                    .collect(),
            ),
        }
    }
}

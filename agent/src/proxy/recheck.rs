//! Decisions that hold: an open connection is checked again against every
//! new config snapshot and closed when its service or port is gone, when it
//! would now take another path (another service on its address, another
//! waypoint, a tunnel instead of the local waypoint), or when L4 policy now
//! denies it — as ztunnel's connection manager re-checks its connections
//! when policy changes. Connections still allowed are left alone.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::authorize::{describe, Denied};
use super::context::{ConnectionContext, ResolvedDestination};
use super::flags::ResponseFlag;
use super::outcome::{ConnectionOutcome, Failure, Flagged};
use super::route::{DispatchError, Route};
use super::ProxyContext;
use crate::config::snapshot::{Snapshot, WaypointRef};

/// Why an open connection was closed after a config change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Revoked {
    /// The service, its port or its waypoint is gone.
    #[error("config generation {generation}: {reason}; open connection closed")]
    Gone {
        /// The config that took it away.
        generation: u64,
        /// What is gone.
        reason: DispatchError,
    },
    /// The address and port now lead somewhere else.
    #[error(
        "config generation {generation}: {addr} now takes another path ({now}); open connection closed"
    )]
    Moved {
        /// The config that moved it.
        generation: u64,
        /// The original destination.
        addr: SocketAddr,
        /// Where it leads now.
        now: String,
    },
    /// L4 AuthorizationPolicy now denies the connection.
    #[error(
        "config generation {generation}: RBAC: access denied: {reason}; open connection closed"
    )]
    Denied {
        /// The config whose policy denies it.
        generation: u64,
        /// The decision, as the access log words it.
        reason: String,
    },
}

impl Revoked {
    /// A denial by policy in `dest`'s config.
    pub fn denied(dest: &ResolvedDestination, denied: &Denied) -> Self {
        Revoked::Denied {
            generation: dest.snapshot.generation,
            reason: describe(&denied.0),
        }
    }
}

impl Flagged for Revoked {
    fn flag(&self) -> Option<ResponseFlag> {
        match self {
            Revoked::Gone { reason, .. } => reason.flag(),
            Revoked::Moved { .. } => Some(ResponseFlag::NoRoute),
            Revoked::Denied { .. } => Some(ResponseFlag::RbacDenied),
        }
    }
}

/// What a connection's path is compared on between two configs.
#[derive(Debug, PartialEq, Eq)]
struct PathKey<'a> {
    /// `http`, `passthrough` or `tcp`.
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
    host: &'a str,
    port: u16,
    waypoint: Option<&'a WaypointRef>,
    /// The HBONE address of a remote waypoint.
    remote: Option<SocketAddr>,
}

impl std::fmt::Display for PathKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to {}:{} of {}/{}",
            self.kind, self.host, self.port, self.namespace, self.name
        )?;
        match (self.waypoint, self.remote) {
            (Some(w), Some(addr)) => write!(f, " through waypoint {w} at {addr}"),
            (Some(w), None) => write!(f, " through waypoint {w}"),
            _ => Ok(()),
        }
    }
}

fn path_key<'a>(dest: &'a ResolvedDestination, route: &'a Route) -> PathKey<'a> {
    let kind = match route {
        Route::Http(_) => "http",
        Route::Passthrough(_) => "passthrough",
        Route::Tcp(_) => "tcp",
        Route::Tunnel(..) => "tunnel",
    };
    let target = route.target();
    PathKey {
        kind,
        namespace: &target.service.namespace,
        name: &target.service.name,
        host: &target.service.host,
        port: target.port.number,
        waypoint: dest.waypoint.as_ref().map(|w| &w.reference),
        remote: dest.waypoint.as_ref().and_then(|w| w.remote),
    }
}

/// `Ok` when `now` gives the connection the path it was accepted on.
pub fn path_unchanged(conn: &ConnectionContext, now: &ResolvedDestination) -> Result<(), Revoked> {
    let generation = now.snapshot.generation;
    let current = conn
        .route(now)
        .map_err(|reason| Revoked::Gone { generation, reason })?;
    let Ok(accepted) = conn.route(&conn.accepted) else {
        // A connection refused at accept is closed already; nothing holds.
        return Ok(());
    };
    let (was, is) = (path_key(&conn.accepted, &accepted), path_key(now, &current));
    if was == is {
        return Ok(());
    }
    Err(Revoked::Moved {
        generation,
        addr: conn.orig_dst,
        now: is.to_string(),
    })
}

/// Waits for a config (from `snapshots`) that `check` refuses for `conn`,
/// and returns why. Every snapshot newer than the one the connection was
/// accepted on is checked, the current one first; pending forever while
/// every config allows the connection.
pub async fn revoked(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    conn: &ConnectionContext,
    check: impl Fn(&ResolvedDestination) -> Result<(), Revoked>,
) -> Revoked {
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        if !Arc::ptr_eq(&snapshot, &conn.accepted.snapshot) {
            if let Err(revoked) = check(&conn.destination_in(snapshot)) {
                return revoked;
            }
        }
        if snapshots.changed().await.is_err() {
            // No more configs: the one in force stays.
            return std::future::pending().await;
        }
    }
}

/// Runs an L4 connection until it ends, or until a new config takes its
/// path away or `policy` denies it there: then it is dropped (both sides
/// closed) and the outcome says why.
pub async fn hold(
    ctx: &ProxyContext,
    conn: &ConnectionContext,
    serving: impl std::future::Future<Output = ConnectionOutcome>,
    policy: impl Fn(&ResolvedDestination) -> Result<(), Revoked>,
) -> ConnectionOutcome {
    let check = |dest: &ResolvedDestination| {
        path_unchanged(conn, dest)?;
        policy(dest)
    };
    tokio::select! {
        outcome = serving => outcome,
        revoked = revoked(ctx.snapshots.clone(), conn, check) => {
            tracing::debug!(src = %conn.src, reason = %revoked, "open connection closed by a config change");
            ConnectionOutcome::refused(Failure::of(&revoked))
        }
    }
}

//! AuthorizationPolicy at the waypoint, shared by the HTTP stage (per
//! request) and by TCP connections and HBONE tunnels (per connection, with
//! no HTTP attributes: Istio's rules for HTTP-only fields on TCP apply).
//! Every decision is counted in the [`Authorizer`]'s counters.

use crate::authz::{
    AuthzCounts, AuthzStats, GatewayKey, HttpAttrs, NamespacedName, PolicyDecision, RequestAttrs,
    TargetKey,
};
use crate::config::kinds::gateway::WAYPOINT_CLASS;
use crate::proxy::context::{ConnectionContext, ResolvedDestination};
use crate::proxy::flags::ResponseFlag;
use crate::proxy::outcome::Flagged;

/// An AuthorizationPolicy denied a whole connection.
#[derive(Debug, thiserror::Error)]
#[error("RBAC: access denied: {}", describe(.0))]
pub struct Denied(pub PolicyDecision);

impl Flagged for Denied {
    fn flag(&self) -> Option<ResponseFlag> {
        Some(ResponseFlag::RbacDenied)
    }
}

/// Decides by the policies in a connection's destination, and counts the
/// decisions (`egret_authz_decisions_total`).
#[derive(Debug, Default)]
pub struct Authorizer {
    stats: AuthzStats,
}

impl Authorizer {
    /// The decisions counted so far.
    pub fn counts(&self) -> AuthzCounts {
        self.stats.snapshot()
    }

    /// Evaluates the policies of the waypoint and service `dest` names (the
    /// connection's destination in the config in force); `None` when it is
    /// not at a waypoint or no policy exists.
    pub fn evaluate(
        &self,
        conn: &ConnectionContext,
        dest: &ResolvedDestination,
        principal: &str,
        http: Option<HttpAttrs<'_>>,
    ) -> Option<PolicyDecision> {
        let waypoint = dest.waypoint.as_ref()?;
        let service = dest.service.as_ref()?;
        let policies = &dest.snapshot.authz;
        if policies.is_empty() {
            return None;
        }
        let attrs = RequestAttrs {
            source_principal: Some(principal),
            source_ip: conn.src.ip(),
            remote_ip: conn.src.ip(),
            destination: conn.orig_dst,
            sni: conn.sni(),
            http,
        };
        let target = TargetKey {
            gateway: GatewayKey {
                namespace: &waypoint.reference.namespace,
                name: &waypoint.reference.name,
                class: WAYPOINT_CLASS,
            },
            service_entry: Some(NamespacedName {
                namespace: &service.namespace,
                name: &service.name,
            }),
            service: None,
        };
        let decision = policies.evaluate(&target, &attrs);
        self.stats.record(&decision);
        Some(decision)
    }

    /// L4 authorization of a whole connection to a non-HTTP port, by the
    /// policies of `dest`'s config. HTTP ports are decided per request by
    /// the HTTP stage (checking them here without HTTP attributes would drop
    /// every HTTP-only ALLOW rule and deny them all), and TLS passthrough
    /// ports once the ClientHello is read (`connection.sni` rules need it):
    /// [`Authorizer::tls`].
    pub fn connection(
        &self,
        conn: &ConnectionContext,
        dest: &ResolvedDestination,
    ) -> Result<(), Denied> {
        let decided_later = dest.port(conn.orig_dst.port()).is_some_and(|p| {
            p.protocol.is_http()
                || (dest.waypoint.is_some() && crate::proxy::passthrough::handles(p.protocol))
        });
        if decided_later {
            return Ok(());
        }
        self.check(conn, dest)
    }

    /// L4 authorization of a TLS passthrough connection whose SNI is known
    /// ([`ConnectionContext::sni`]). `hosts` is HTTP-only in Istio, so it
    /// does not see the SNI; `when: connection.sni` does.
    pub fn tls(&self, conn: &ConnectionContext, dest: &ResolvedDestination) -> Result<(), Denied> {
        self.check(conn, dest)
    }

    fn check(&self, conn: &ConnectionContext, dest: &ResolvedDestination) -> Result<(), Denied> {
        match self.evaluate(conn, dest, &principal_of(conn), None) {
            Some(decision) if !decision.allowed => Err(Denied(decision)),
            _ => Ok(()),
        }
    }
}

/// The source principal without `spiffe://` (`td/ns/<ns>/sa/<sa>`).
pub fn principal_of(conn: &ConnectionContext) -> String {
    let id = &conn.src_identity;
    format!(
        "{}/ns/{}/sa/{}",
        id.trust_domain, id.namespace, id.service_account
    )
}

/// `policy ns/name (reason)` for logs.
pub fn describe(decision: &PolicyDecision) -> String {
    match &decision.policy {
        Some(p) => format!("{} by {p}", decision.reason.as_str()),
        None => decision.reason.as_str().to_string(),
    }
}

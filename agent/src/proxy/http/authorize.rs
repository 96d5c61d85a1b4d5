//! The AuthorizationPolicy stage: every request is checked against the
//! policies that target the waypoint or the destination ServiceEntry, with
//! Istio's decision order; a deny is Envoy's `403 RBAC: access denied`.

use std::sync::OnceLock;

use http::{header, request};

use super::pipeline::{Decision, Exchange, RequestStage};
use super::reply::LocalReply;
use crate::authz::{AuthzStats, GatewayKey, HttpAttrs, ObjectKey, RequestAttrs, TargetKey};
use crate::config::kinds::gateway::WAYPOINT_CLASS;
use crate::proxy::context::ConnectionContext;

/// Process-wide counters of authorization decisions, by reason (exported as
/// metrics).
pub fn authz_stats() -> &'static AuthzStats {
    static STATS: OnceLock<AuthzStats> = OnceLock::new();
    STATS.get_or_init(AuthzStats::default)
}

/// Checks each request of one connection.
pub struct Authorize {
    /// The source principal without `spiffe://` (`td/ns/<ns>/sa/<sa>`),
    /// formatted once per connection rather than per request.
    principal: String,
}

impl Authorize {
    /// The stage for requests arriving on `conn`.
    pub fn new(conn: &ConnectionContext) -> Self {
        let id = &conn.src_identity;
        Authorize {
            principal: format!(
                "{}/ns/{}/sa/{}",
                id.trust_domain, id.namespace, id.service_account
            ),
        }
    }
}

impl RequestStage for Authorize {
    fn on_request(&self, exchange: &mut Exchange, head: &mut request::Parts) -> Decision {
        let Some(waypoint) = exchange.conn.waypoint.as_ref() else {
            return Decision::Continue;
        };
        if exchange.snapshot.authz.is_empty() {
            return Decision::Continue;
        }
        let conn = &exchange.conn;
        let authority = head
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| head.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let attrs = RequestAttrs {
            source_principal: Some(&self.principal),
            source_namespace: Some(&conn.src_identity.namespace),
            source_ip: conn.src.ip(),
            remote_ip: conn.src.ip(),
            destination: conn.orig_dst,
            sni: None,
            http: Some(HttpAttrs {
                authority,
                method: head.method.as_str(),
                path: head.uri.path(),
                headers: &head.headers,
            }),
        };
        let service = &exchange.target.service;
        let target = TargetKey {
            gateway: GatewayKey {
                namespace: &waypoint.reference.namespace,
                name: &waypoint.reference.name,
                class: WAYPOINT_CLASS,
            },
            service_entry: Some(ObjectKey {
                namespace: &service.namespace,
                name: &service.name,
            }),
            service: None,
        };
        let decision = exchange.snapshot.authz.evaluate(&target, &attrs);
        authz_stats().record(&decision);
        let allowed = decision.allowed;
        exchange.authz = Some(decision);
        if allowed {
            Decision::Continue
        } else {
            Decision::Respond(LocalReply::rbac_denied())
        }
    }
}

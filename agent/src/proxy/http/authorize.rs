//! The AuthorizationPolicy request stage: every request is checked against
//! the policies, in force when it arrives, that target the waypoint or the
//! destination ServiceEntry, with Istio's decision order; a deny is Envoy's
//! `403 RBAC: access denied`.

use http::{header, request};

use super::pipeline::{Decision, Exchange, RequestStage};
use super::reply::LocalReply;
use crate::authz::HttpAttrs;
use crate::proxy::authorize::{evaluate, principal_of};
use crate::proxy::context::ConnectionContext;

/// Checks each request of one connection.
pub struct Authorize {
    /// Formatted once per connection rather than per request.
    principal: String,
}

impl Authorize {
    /// The stage for requests arriving on `conn`.
    pub fn new(conn: &ConnectionContext) -> Self {
        Authorize {
            principal: principal_of(conn),
        }
    }
}

impl RequestStage for Authorize {
    fn on_request(&self, exchange: &mut Exchange, head: &mut request::Parts) -> Decision {
        let authority = head
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| head.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        let http = HttpAttrs {
            authority,
            method: head.method.as_str(),
            path: head.uri.path(),
            headers: &head.headers,
        };
        let Some(decision) = evaluate(
            &exchange.conn,
            &exchange.destination,
            &self.principal,
            Some(http),
        ) else {
            return Decision::Continue;
        };
        let allowed = decision.allowed;
        exchange.authz = Some(decision);
        if allowed {
            Decision::Continue
        } else {
            Decision::Respond(LocalReply::rbac_denied())
        }
    }
}

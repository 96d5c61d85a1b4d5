//! The AuthorizationPolicy request stage: every request is checked against
//! the policies, in force when it arrives, that target the waypoint or the
//! destination ServiceEntry, with Istio's decision order; a deny is Envoy's
//! `403 RBAC: access denied`.

use std::sync::Arc;

use http::{header, request};

use super::pipeline::{Exchange, RequestStage, StageFlow};
use super::reply::LocalReply;
use crate::authz::HttpAttrs;
use crate::proxy::authorize::{principal_of, Authorizer};
use crate::proxy::context::ConnectionContext;

/// Checks each request of one connection.
pub struct Authorize {
    authorizer: Arc<Authorizer>,
    /// Formatted once per connection rather than per request.
    principal: String,
}

impl Authorize {
    /// The stage for requests arriving on `conn`, decided by `authorizer`.
    pub fn new(authorizer: Arc<Authorizer>, conn: &ConnectionContext) -> Self {
        Authorize {
            authorizer,
            principal: principal_of(conn),
        }
    }
}

impl RequestStage for Authorize {
    fn on_request(&self, exchange: &mut Exchange, head: &mut request::Parts) -> StageFlow {
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
        let Some(decision) = self.authorizer.evaluate(
            &exchange.conn,
            &exchange.destination,
            &self.principal,
            Some(http),
        ) else {
            return StageFlow::Continue;
        };
        let allowed = decision.allowed;
        exchange.authz = Some(decision);
        if allowed {
            StageFlow::Continue
        } else {
            StageFlow::Respond(LocalReply::rbac_denied())
        }
    }
}

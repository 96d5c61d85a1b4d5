//! The per-request pipeline: request head -> request stages (each may answer
//! locally) -> upstream -> response stages -> workload.
//!
//! Policy plugs in as stages: authorization is a [`RequestStage`] that
//! answers 403; a VirtualService route is a [`RequestStage`] that rewrites
//! the head and sets [`Exchange::target`], plus a [`ResponseStage`] for its
//! response header edits. Stages read [`Exchange::snapshot`], the config in
//! force when the request arrived, so a config change applies to the very
//! next request, on open connections too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{request, response, HeaderValue};

use super::reply::LocalReply;
use crate::config::snapshot::Snapshot;
use crate::proxy::authorize::Authorizer;
use crate::proxy::context::{ConnectionContext, ResolvedDestination, UpstreamTarget};
use crate::proxy::flags::ResponseFlags;

/// Everything one request's stages share.
#[derive(Debug)]
pub struct Exchange {
    /// The connection the request came on.
    pub conn: Arc<ConnectionContext>,
    /// The connection's destination in the config in force when the
    /// request arrived (service, waypoint: what policy is looked up by).
    pub destination: Arc<ResolvedDestination>,
    /// That config.
    pub snapshot: Arc<Snapshot>,
    /// Where the request goes; a route stage may change it.
    pub target: UpstreamTarget,
    /// Reasons gathered so far, for the access log.
    pub flags: ResponseFlags,
    /// The upstream endpoint the request was sent to.
    pub upstream_addr: Option<SocketAddr>,
    /// From sending the request upstream to its response headers.
    pub upstream_service_time: Option<Duration>,
    /// The authorization decision, when policies applied (for the access log).
    pub authz: Option<crate::authz::PolicyDecision>,
    /// The VirtualService route's response edits, when it has any.
    pub response_edits: Option<ResponseEdits>,
    /// Fault-injected delay before going upstream.
    pub delay: Option<Duration>,
    /// Route timeout for the upstream exchange (`None`: no timeout).
    pub timeout: Option<Duration>,
    /// `location` of a VirtualService redirect reply.
    pub redirect_location: Option<HeaderValue>,
    /// Retry policy (`None`: no retries); Istio's default unless a route says otherwise.
    pub retries: Option<Arc<crate::route::RetryPolicy>>,
}

/// A matched route's response header operations, kept for the response
/// stage: the route is shared with the table, not copied per request.
#[derive(Debug, Clone)]
pub struct ResponseEdits {
    /// The matched route.
    pub route: Arc<crate::route::CompiledHttpRoute>,
    /// Index of the picked destination among the route's.
    pub destination: Option<usize>,
}

impl ResponseEdits {
    /// The picked destination.
    pub fn destination(&self) -> Option<&crate::route::CompiledDestination> {
        match &self.route.action {
            crate::route::RouteAction::Forward(dests) => dests.get(self.destination?),
            _ => None,
        }
    }
}

impl Exchange {
    /// A fresh exchange for a request on `conn`, decided on `destination`'s
    /// config, going to `target`, retried per `retries` unless a route says otherwise.
    pub fn new(
        conn: Arc<ConnectionContext>,
        destination: Arc<ResolvedDestination>,
        target: UpstreamTarget,
        retries: Arc<crate::route::RetryPolicy>,
    ) -> Self {
        Exchange {
            conn,
            snapshot: destination.snapshot.clone(),
            destination,
            target,
            flags: ResponseFlags::default(),
            upstream_addr: None,
            upstream_service_time: None,
            authz: None,
            response_edits: None,
            delay: None,
            timeout: None,
            redirect_location: None,
            retries: Some(retries),
        }
    }
}

/// What a request stage decided.
#[derive(Debug)]
pub enum StageFlow {
    /// Go on to the next stage, then upstream.
    Continue,
    /// Answer the workload now; nothing goes upstream.
    Respond(LocalReply),
}

/// A step that sees (and may edit) each request head before it goes upstream.
pub trait RequestStage: Send + Sync + 'static {
    /// Inspects or edits the request; may answer instead of forwarding.
    fn on_request(&self, exchange: &mut Exchange, head: &mut request::Parts) -> StageFlow;
}

/// A step that edits each response head before it goes to the workload
/// (upstream responses and local replies alike).
pub trait ResponseStage: Send + Sync + 'static {
    /// Edits the response head.
    fn on_response(&self, exchange: &Exchange, head: &mut response::Parts);
}

/// The ordered stages of the waypoint, shared by the requests of a connection.
#[derive(Clone)]
pub struct Pipeline {
    request: Vec<Arc<dyn RequestStage>>,
    response: Vec<Arc<dyn ResponseStage>>,
}

impl Pipeline {
    /// A pipeline running `request` stages in order before upstream and
    /// `response` stages in order after; Envoy's own response headers are
    /// always set last.
    pub fn new(
        request: Vec<Arc<dyn RequestStage>>,
        mut response: Vec<Arc<dyn ResponseStage>>,
    ) -> Self {
        response.push(Arc::new(EnvoyHeaders));
        Pipeline { request, response }
    }

    /// The waypoint with no policy: every request that names the service
    /// goes upstream.
    pub fn standard() -> Self {
        Pipeline::new(vec![Arc::new(super::host::ServiceHost)], Vec::new())
    }

    /// The waypoint's pipeline for one connection: the Host check, then
    /// AuthorizationPolicy, then VirtualService routing; the route's
    /// response edits on the way back.
    pub fn waypoint(authorizer: Arc<Authorizer>, conn: &ConnectionContext) -> Self {
        let routing = Arc::new(super::routing::Routing);
        Pipeline::new(
            vec![
                Arc::new(super::host::ServiceHost),
                Arc::new(super::authorize::Authorize::new(authorizer, conn)),
                routing.clone(),
            ],
            vec![routing],
        )
    }

    /// Runs the request stages until one answers.
    pub fn decide(&self, exchange: &mut Exchange, head: &mut request::Parts) -> StageFlow {
        for stage in &self.request {
            if let StageFlow::Respond(reply) = stage.on_request(exchange, head) {
                return StageFlow::Respond(reply);
            }
        }
        StageFlow::Continue
    }

    /// Runs every response stage.
    pub fn respond(&self, exchange: &Exchange, head: &mut response::Parts) {
        for stage in &self.response {
            stage.on_response(exchange, head);
        }
    }
}

/// `server: istio-envoy` and `x-envoy-upstream-service-time`: how a user
/// tells that a response came through the waypoint.
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHeaders;

/// Header Envoy reports upstream latency in.
pub const UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";

impl ResponseStage for EnvoyHeaders {
    fn on_response(&self, exchange: &Exchange, head: &mut response::Parts) {
        head.headers.insert(
            http::header::SERVER,
            HeaderValue::from_static("istio-envoy"),
        );
        if let Some(elapsed) = exchange.upstream_service_time {
            head.headers.insert(
                UPSTREAM_SERVICE_TIME,
                HeaderValue::from(elapsed.as_millis() as u64),
            );
        }
    }
}

//! The VirtualService stage: picks the first matching `http` route for the
//! service's host, applies faults, redirects and direct responses, chooses a
//! destination by weight, and rewrites the request; on the way back it
//! applies the route's response header operations.

use std::sync::Arc;

use http::{request, response, HeaderValue, StatusCode};

use super::pipeline::{Exchange, RequestStage, ResponseEdits, ResponseStage, StageFlow};
use super::reply::LocalReply;
use crate::net::HostName;
use crate::proxy::context::UpstreamTarget;
use crate::route::{
    apply_request, apply_response, fault_decision, pick_destination, CompiledDestination,
    CompiledHttpRoute, HttpRequestView, MatchedRoute, RedirectRequest, RouteAction, RouteResult,
};

/// Routes requests by the VirtualServices of the config in force.
pub struct Routing;

impl RequestStage for Routing {
    fn on_request(&self, exchange: &mut Exchange, head: &mut request::Parts) -> StageFlow {
        // Cheap clone of the Arc: the table must outlive the borrow of `head`.
        let snapshot = exchange.snapshot.clone();
        let service = exchange.target.service.clone();
        let result = {
            let authority = Some(request_authority(head))
                .filter(|a| !a.is_empty())
                .unwrap_or(&service.host);
            let view = HttpRequestView {
                method: head.method.as_str(),
                path_and_query: head.uri.path_and_query().map_or("/", |p| p.as_str()),
                authority,
                scheme: "http",
                port: exchange.conn.orig_dst.port(),
                headers: &head.headers,
                source_namespace: Some(&exchange.conn.src_identity.namespace),
            };
            snapshot.routes.route_http(&service.host, &view)
        };
        match result {
            RouteResult::NoVirtualService => StageFlow::Continue,
            RouteResult::NoRouteMatched => StageFlow::Respond(LocalReply::no_route()),
            RouteResult::Matched(matched) => apply_route(exchange, head, &matched),
        }
    }
}

fn apply_route(
    exchange: &mut Exchange,
    head: &mut request::Parts,
    matched: &MatchedRoute<'_>,
) -> StageFlow {
    let route = matched.route;
    let fault = fault_decision(route, rand::random(), rand::random());
    exchange.delay = fault.delay;
    if let Some(status) = fault.abort {
        return StageFlow::Respond(LocalReply::fault_abort(status));
    }
    exchange.timeout = route.timeout;
    exchange.retries = route.retries.clone();
    let destination = match &route.action {
        RouteAction::DirectResponse { status, body } => {
            return StageFlow::Respond(LocalReply::direct(
                *status,
                body.clone().unwrap_or_default(),
            ));
        }
        RouteAction::Redirect(redirect) => {
            let location = redirect.location(&RedirectRequest {
                scheme: "http",
                host: request_authority(head),
                path_and_query: head.uri.path_and_query().map_or("/", |p| p.as_str()),
                matched_prefix_len: matched.matched_prefix_len,
                port: exchange.conn.orig_dst.port(),
            });
            exchange.redirect_location = HeaderValue::from_str(&location).ok();
            return StageFlow::Respond(LocalReply::direct(redirect.status, String::new()));
        }
        RouteAction::Forward(_) => pick_destination(route, rand::random()),
    };
    if let Err(e) = apply_request(matched, destination, head) {
        tracing::warn!(route = %route.virtual_service, error = %e, "route rewrite produced an invalid request");
        return StageFlow::Respond(LocalReply::direct(
            StatusCode::INTERNAL_SERVER_ERROR,
            "invalid rewrite".into(),
        ));
    }
    if let Some(dest) = destination {
        match retarget(exchange, &dest.host, dest.port) {
            Some(target) => exchange.target = target,
            None => return StageFlow::Respond(LocalReply::no_healthy_upstream()),
        }
    }
    if route.has_response_edits(destination) {
        exchange.response_edits = Some(ResponseEdits {
            route: Arc::clone(route),
            destination: destination.and_then(|d| destination_index(route, d)),
        });
    }
    StageFlow::Continue
}

/// Where `dest` sits among the route's destinations.
fn destination_index(route: &CompiledHttpRoute, dest: &CompiledDestination) -> Option<usize> {
    match &route.action {
        RouteAction::Forward(dests) => dests.iter().position(|d| std::ptr::eq(d, dest)),
        _ => None,
    }
}

/// The service port a route destination names; the current target when it
/// names the same host and port.
fn retarget(exchange: &Exchange, host: &HostName, port: Option<u16>) -> Option<UpstreamTarget> {
    let current = &exchange.target;
    let port = port.unwrap_or(current.port.number);
    if *host == current.service.host && port == current.port.number {
        return Some(current.clone());
    }
    let service = exchange.snapshot.by_host.get(host)?.first()?.clone();
    let port = service.port(port)?.clone();
    Some(UpstreamTarget { service, port })
}

/// `Host`, or the URI's authority (HTTP/2), as sent.
fn request_authority(head: &request::Parts) -> &str {
    head.headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default()
}

impl ResponseStage for Routing {
    fn on_response(&self, exchange: &Exchange, head: &mut response::Parts) {
        if let Some(location) = &exchange.redirect_location {
            head.headers
                .insert(http::header::LOCATION, location.clone());
        }
        if let Some(edits) = &exchange.response_edits {
            apply_response(&edits.route, edits.destination(), head);
        }
    }
}

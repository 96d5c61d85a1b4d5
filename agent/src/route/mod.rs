//! VirtualService: ordered HTTP routes, matches, rewrites and header operations.
//!
//! [`compile`] validates one VirtualService as Istio's webhook does and precompiles
//! regexes, header names and durations; [`RouteTable`] indexes them by host and
//! picks the first matching route; [`apply_request`] / [`apply_response`] carry out
//! a route's header operations and rewrites; [`pick_destination`] and
//! [`fault_decision`] take the random numbers they need as arguments.

mod apply;
mod compile;
mod compiled;
pub(crate) mod duration;
mod error;
mod matching;
mod redirect;
mod spec;
mod table;

#[cfg(test)]
mod tests;

pub use apply::{
    apply_request, apply_response, fault_decision, pick_destination, pick_weighted, FaultDecision,
};
pub use compile::compile;
pub use compiled::{
    CompiledDestination, CompiledHttpRoute, CompiledL4Route, CompiledVirtualService, Fault,
    Redirect, RetryPolicy, RouteAction,
};
pub use error::RouteError;
pub use matching::HttpRequestView;
pub use redirect::{RedirectPath, RedirectPort, RedirectRequest};
pub use spec::{
    Destination, FaultAbort, FaultDelay, HeaderOperations, Headers, HttpBody, HttpDirectResponse,
    HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute,
    HttpRouteDestination, L4Match, Percent, PortSelector, RegexRewrite, RouteDestination,
    StringMatch, TcpRoute, TlsRoute, VirtualServiceSpec,
};
pub use table::{L4View, MatchedRoute, RouteResult, RouteTable};

/// Body of the 404 sent when VirtualServices exist for the host but no route matched.
pub const NO_ROUTE_BODY: &str = "no route matched the request (egret: VirtualService)\n";

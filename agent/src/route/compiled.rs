//! Compiled VirtualService routes: what to match, where to send, what to change.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use ipnet::IpNet;
use regex::Regex;

use crate::net::HostName;

use super::matching::CompiledMatch;

/// A VirtualService ready for the [`super::RouteTable`].
#[derive(Clone, Debug)]
pub struct CompiledVirtualService {
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// Lowercase hosts; short names expanded to `<name>.<ns>.svc.cluster.local`.
    pub(crate) hosts: Vec<HostName>,
    /// Whether `gateways` is empty or names `mesh` (only then it binds to waypoints).
    pub(crate) applies_to_mesh: bool,
    /// Shared: a request whose route edits responses keeps its route.
    pub(crate) http: Vec<Arc<CompiledHttpRoute>>,
    pub(crate) tls: Vec<CompiledL4Route>,
    pub(crate) tcp: Vec<CompiledL4Route>,
}

impl CompiledVirtualService {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The hosts the VirtualService serves.
    pub fn hosts(&self) -> &[HostName] {
        &self.hosts
    }

    /// The ordered HTTP routes.
    pub fn http_routes(&self) -> &[Arc<CompiledHttpRoute>] {
        &self.http
    }
}

/// One `spec.http[]` route.
#[derive(Clone, Debug)]
pub struct CompiledHttpRoute {
    /// `http[].name`, if given.
    pub name: Option<String>,
    /// The VirtualService it came from, `ns/name`, for logs.
    pub virtual_service: String,
    pub(crate) matches: Vec<CompiledMatch>,
    /// What to do with a matching request.
    pub action: RouteAction,
    pub(crate) rewrite: Option<Rewrite>,
    /// Route-level header operations.
    pub(crate) headers: HeaderOps,
    /// Request timeout; `None` = no timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// Retry policy; `None` = retries disabled (`attempts: 0`). Shared:
    /// every request on the route takes it.
    pub retries: Option<Arc<RetryPolicy>>,
    /// Fault injection.
    pub fault: Option<Fault>,
}

/// What a route does.
#[derive(Clone, Debug)]
pub enum RouteAction {
    /// Forward to one of these destinations, by weight.
    Forward(Vec<CompiledDestination>),
    /// Reply with a redirect.
    Redirect(Redirect),
    /// Reply with a fixed response.
    DirectResponse {
        /// Status code.
        status: StatusCode,
        /// Body, if any.
        body: Option<String>,
    },
}

/// A weighted destination.
#[derive(Clone, Debug)]
pub struct CompiledDestination {
    /// Service host.
    pub host: HostName,
    /// DestinationRule subset.
    pub subset: Option<String>,
    /// Service port; the request's port when unset.
    pub port: Option<u16>,
    /// Relative weight (0 = never picked when there are several).
    pub weight: u32,
    pub(crate) headers: HeaderOps,
}

pub use super::redirect::Redirect;

/// `rewrite`.
#[derive(Clone, Debug)]
pub(crate) struct Rewrite {
    pub uri: Option<String>,
    pub regex: Option<(Regex, String)>,
    pub authority: Option<String>,
}

/// Header operations of one level for requests and responses.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderOps {
    pub request: HeaderOpList,
    pub response: HeaderOpList,
}

/// One level's `set` / `add` / `remove`, in Envoy's order: remove, then set, then add.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeaderOpList {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// `host` / `:authority` in `set` or `add`: an authority rewrite (requests only).
    pub authority: Option<String>,
}

impl CompiledHttpRoute {
    /// Whether the route (or `destination`) edits response headers, so the
    /// waypoint keeps it for the response only when needed.
    pub fn has_response_edits(&self, destination: Option<&CompiledDestination>) -> bool {
        !self.headers.response.is_empty()
            || destination.is_some_and(|d| !d.headers.response.is_empty())
    }
}

impl HeaderOpList {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
            && self.authority.is_none()
    }
}

/// Retry settings of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Timeout of each attempt.
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry conditions, e.g. `connect-failure`.
    pub retry_on: Vec<String>,
    /// Status codes that trigger a retry (with `retriable-status-codes`).
    pub retriable_status_codes: Vec<u16>,
}

/// Istio's default retry conditions.
const DEFAULT_RETRY_ON: [&str; 5] = [
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
];

impl RetryPolicy {
    /// Istio's default: 2 retries on connect-failure, refused-stream, unavailable, cancelled.
    pub fn istio_default() -> Self {
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            retry_on: DEFAULT_RETRY_ON.iter().map(|s| s.to_string()).collect(),
            retriable_status_codes: Vec::new(),
        }
    }
}

/// `fault`: probabilities in percent.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Delay and the share of requests delayed.
    pub delay: Option<(Duration, f64)>,
    /// Status and the share of requests aborted.
    pub abort: Option<(StatusCode, f64)>,
}

/// One `tls[]` or `tcp[]` route.
#[derive(Clone, Debug)]
pub struct CompiledL4Route {
    pub(crate) matches: Vec<CompiledL4Match>,
    /// Weighted destinations (no header operations at L4).
    pub destinations: Vec<CompiledDestination>,
}

/// One L4 `match[]` entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledL4Match {
    /// Lowercase SNI values, exact or `*.suffix`.
    pub sni_hosts: Vec<HostName>,
    pub destination_subnets: Vec<IpNet>,
    pub port: Option<u16>,
    pub source_namespace: Option<String>,
}

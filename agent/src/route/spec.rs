//! VirtualService `spec` as written (networking.istio.io v1 / v1beta1 / v1alpha3).
//! Fields egret does not implement are still parsed so `compile` can refuse them
//! by name instead of a generic "unknown field".

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

/// `spec` of a VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to (exact or `*.suffix`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Gateways; empty or containing `mesh` means sidecars and waypoints.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Visibility; accepted, everything is visible on one node.
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Ordered HTTP routes.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// Ordered TLS (SNI) routes.
    #[serde(default)]
    pub tls: Vec<TlsRoute>,
    /// Ordered TCP routes.
    #[serde(default)]
    pub tcp: Vec<TcpRoute>,
}

/// One `spec.http[]` route.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// Route name, for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Match entries (OR); none = match everything.
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<HttpRouteDestination>,
    /// Redirect instead of forwarding.
    #[serde(default)]
    pub redirect: Option<HttpRedirect>,
    /// Fixed reply instead of forwarding.
    #[serde(default)]
    pub direct_response: Option<HttpDirectResponse>,
    /// URI / authority rewrite.
    #[serde(default)]
    pub rewrite: Option<HttpRewrite>,
    /// Request timeout, e.g. `1.5s`; none by default.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retry policy.
    #[serde(default)]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default)]
    pub fault: Option<HttpFaultInjection>,
    /// Route-level header operations.
    #[serde(default)]
    pub headers: Option<Headers>,
    /// Not supported yet.
    #[serde(default)]
    pub mirror: Option<Value>,
    /// Not supported yet.
    #[serde(default)]
    pub mirrors: Option<Value>,
    /// Not supported yet.
    #[serde(default)]
    pub mirror_percentage: Option<Value>,
    /// Not supported yet.
    #[serde(default)]
    pub mirror_percent: Option<Value>,
    /// Not supported yet.
    #[serde(default)]
    pub cors_policy: Option<Value>,
    /// Not supported yet.
    #[serde(default)]
    pub delegate: Option<Value>,
}

/// One `match[]` entry; fields AND.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// Entry name, for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Path match.
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// `:scheme` match.
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    /// Method match.
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// `:authority` match.
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// Header matches; keys lowercase; `{}` = present.
    #[serde(default)]
    pub headers: BTreeMap<String, Option<StringMatch>>,
    /// Headers that must not match.
    #[serde(default)]
    pub without_headers: BTreeMap<String, Option<StringMatch>>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: BTreeMap<String, Option<StringMatch>>,
    /// Destination port.
    #[serde(default)]
    pub port: Option<u32>,
    /// Case-insensitive `uri` exact/prefix.
    #[serde(default)]
    pub ignore_uri_case: bool,
    /// Ignored at a waypoint (it serves many workloads).
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Source namespace.
    #[serde(default)]
    pub source_namespace: Option<String>,
    /// Gateway names; ignored at a waypoint.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Ignored.
    #[serde(default)]
    pub stat_prefix: Option<String>,
}

/// Istio `StringMatch`: one of `exact`, `prefix`, `regex` (RE2, full match).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    /// Exact value.
    #[serde(default)]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Regular expression.
    #[serde(default)]
    pub regex: Option<String>,
}

/// One `route[]` destination.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    /// Where to send the request.
    pub destination: Destination,
    /// Relative weight.
    #[serde(default)]
    pub weight: Option<i32>,
    /// Destination-level header operations.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// A destination service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// Service host.
    #[serde(default)]
    pub host: String,
    /// DestinationRule subset.
    #[serde(default)]
    pub subset: Option<String>,
    /// Service port.
    #[serde(default)]
    pub port: Option<PortSelector>,
}

/// `port: {number: N}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// `headers: {request, response}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Operations on the request to the upstream.
    #[serde(default)]
    pub request: Option<HeaderOperations>,
    /// Operations on the response to the client.
    #[serde(default)]
    pub response: Option<HeaderOperations>,
}

/// `set` overwrites, `add` appends, `remove` deletes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append these headers.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `redirect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    /// Replacement path.
    #[serde(default)]
    pub uri: Option<String>,
    /// Replacement for the matched path prefix (exclusive with `uri`).
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Replacement authority.
    #[serde(default)]
    pub authority: Option<String>,
    /// Replacement port.
    #[serde(default)]
    pub port: Option<u32>,
    /// `FROM_PROTOCOL_DEFAULT` or `FROM_REQUEST_PORT`.
    #[serde(default)]
    pub derive_port: Option<String>,
    /// Replacement scheme.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Status code; 301 when unset.
    #[serde(default)]
    pub redirect_code: Option<u32>,
}

/// `directResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    /// Status code.
    pub status: u32,
    /// Body.
    #[serde(default)]
    pub body: Option<HttpBody>,
}

/// `directResponse.body`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    /// Text body.
    #[serde(default)]
    pub string: Option<String>,
    /// Base64 body; not supported yet.
    #[serde(default)]
    pub bytes: Option<String>,
}

/// `rewrite`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// Replaces the matched prefix (or the whole path for exact/regex matches).
    #[serde(default)]
    pub uri: Option<String>,
    /// Replaces Host / `:authority`.
    #[serde(default)]
    pub authority: Option<String>,
    /// Regex replacement on the path.
    #[serde(default)]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `rewrite.uriRegexRewrite`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// RE2 pattern.
    #[serde(default, rename = "match")]
    pub pattern: String,
    /// Substitution; `\1` refers to capture group 1.
    #[serde(default)]
    pub rewrite: String,
}

/// `retries`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Retries allowed; 0 disables retries.
    #[serde(default)]
    pub attempts: i32,
    /// Timeout of each attempt.
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    /// Comma-separated Envoy retry conditions and status codes.
    #[serde(default)]
    pub retry_on: Option<String>,
    /// Accepted, no effect on one node.
    #[serde(default)]
    pub retry_remote_localities: Option<bool>,
    /// Accepted, no effect with one endpoint set.
    #[serde(default)]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff interval.
    #[serde(default)]
    pub backoff: Option<String>,
}

/// `fault`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Delay some requests.
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    /// Abort some requests.
    #[serde(default)]
    pub abort: Option<FaultAbort>,
}

/// `fault.delay`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// Delay length.
    #[serde(default)]
    pub fixed_delay: Option<String>,
    /// Not supported (Istio rejects it too).
    #[serde(default)]
    pub exponential_delay: Option<String>,
    /// Share of requests delayed; none when unset.
    #[serde(default)]
    pub percentage: Option<Percent>,
    /// Deprecated integer percentage.
    #[serde(default)]
    pub percent: Option<i32>,
}

/// `fault.abort`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// Status returned.
    #[serde(default)]
    pub http_status: Option<i32>,
    /// Not supported yet.
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// Not supported (Istio rejects it too).
    #[serde(default)]
    pub http2_error: Option<String>,
    /// Share of requests aborted; none when unset.
    #[serde(default)]
    pub percentage: Option<Percent>,
}

/// `percentage: {value: 12.5}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// 0..=100.
    #[serde(default)]
    pub value: f64,
}

/// One `spec.tls[]` route.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRoute {
    /// Match entries (OR); required by Istio.
    #[serde(default, rename = "match")]
    pub matches: Vec<L4Match>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// One `spec.tcp[]` route.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// Match entries (OR); none = match everything.
    #[serde(default, rename = "match")]
    pub matches: Vec<L4Match>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
}

/// A `tls[].match[]` or `tcp[].match[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4Match {
    /// SNI values (TLS only), exact or `*.suffix`.
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    /// Destination IPs / CIDRs.
    #[serde(default)]
    pub destination_subnets: Vec<String>,
    /// Destination port.
    #[serde(default)]
    pub port: Option<u32>,
    /// Ignored at a waypoint.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Source namespace.
    #[serde(default)]
    pub source_namespace: Option<String>,
    /// Ignored at a waypoint.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Deprecated; not supported.
    #[serde(default)]
    pub source_subnet: Option<String>,
}

/// A TLS/TCP destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    /// Where to send the connection.
    pub destination: Destination,
    /// Relative weight.
    #[serde(default)]
    pub weight: Option<i32>,
}

//! Validates a VirtualService as Istio's webhook does and compiles its matchers,
//! header operations and policies once per config change.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use ipnet::IpNet;
use regex::Regex;

use crate::net::HostName;

use super::compiled::{
    CompiledDestination, CompiledHttpRoute, CompiledL4Match, CompiledL4Route,
    CompiledVirtualService, Fault, HeaderOpList, HeaderOps, Redirect, RetryPolicy, Rewrite,
    RouteAction,
};
use super::duration;
use super::error::RouteError;
use super::matching::{CompiledMatch, HeaderKey, StringMatcher, UriMatch};
use super::redirect::{RedirectPath, RedirectPort};
use super::spec::{
    Destination, HeaderOperations, Headers, HttpFaultInjection, HttpMatchRequest, HttpRetry,
    HttpRoute, L4Match, StringMatch, VirtualServiceSpec,
};

/// Envoy retry conditions Istio accepts in `retryOn` (besides status codes).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Compiles VirtualService `namespace/name`; errors name it and the field.
pub fn compile(
    namespace: &str,
    name: &str,
    spec: &VirtualServiceSpec,
) -> Result<CompiledVirtualService, RouteError> {
    let cx = Cx { namespace, name };
    if spec.hosts.is_empty() {
        return Err(cx.err("spec.hosts", "at least one host is required"));
    }
    let hosts = spec
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| cx.host(&format!("spec.hosts[{i}]"), h))
        .collect::<Result<Vec<_>, _>>()?;
    let http = spec
        .http
        .iter()
        .enumerate()
        .map(|(i, r)| cx.http_route(&format!("spec.http[{i}]"), r).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let l4 =
        |kind: &str, matches: &[L4Match], route: &[super::spec::RouteDestination], i: usize| {
            let at = format!("spec.{kind}[{i}]");
            if kind == "tls" && matches.is_empty() {
                return Err(cx.err(&format!("{at}.match"), "TLS routes need at least one match"));
            }
            cx.l4_route(&at, kind == "tls", matches, route)
        };
    let tls = spec
        .tls
        .iter()
        .enumerate()
        .map(|(i, r)| l4("tls", &r.matches, &r.route, i))
        .collect::<Result<Vec<_>, _>>()?;
    let tcp = spec
        .tcp
        .iter()
        .enumerate()
        .map(|(i, r)| l4("tcp", &r.matches, &r.route, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledVirtualService {
        namespace: namespace.to_string(),
        name: name.to_string(),
        hosts,
        applies_to_mesh: spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == "mesh"),
        http,
        tls,
        tcp,
    })
}

/// The VirtualService being compiled, for error messages.
struct Cx<'a> {
    namespace: &'a str,
    name: &'a str,
}

impl Cx<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> RouteError {
        RouteError {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// Case-folds, drops the trailing dot; expands short names as Istio does.
    fn host(&self, at: &str, host: &str) -> Result<HostName, RouteError> {
        let h = HostName::fully_qualified(host);
        if h.is_empty() {
            return Err(self.err(at, "host must not be empty"));
        }
        if h.contains('/') || h.contains(':') {
            return Err(self.err(at, format!("invalid host {host:?}")));
        }
        if h != "*" && !h.contains('.') {
            return Ok(HostName::new(&format!(
                "{h}.{}.svc.cluster.local",
                self.namespace
            )));
        }
        Ok(h)
    }

    fn http_route(&self, at: &str, r: &HttpRoute) -> Result<CompiledHttpRoute, RouteError> {
        for (field, set) in [
            ("mirror", r.mirror.is_some()),
            ("mirrors", r.mirrors.is_some()),
            ("mirrorPercentage", r.mirror_percentage.is_some()),
            ("mirrorPercent", r.mirror_percent.is_some()),
            ("corsPolicy", r.cors_policy.is_some()),
            ("delegate", r.delegate.is_some()),
        ] {
            if set {
                return Err(self.err(&format!("{at}.{field}"), "not supported by egret yet"));
            }
        }
        let (has_route, has_redirect, has_direct) = (
            !r.route.is_empty(),
            r.redirect.is_some(),
            r.direct_response.is_some(),
        );
        let conflict =
            |what: &str| Err(self.err(at, format!("HTTP route cannot contain both {what}")));
        match () {
            _ if has_route && has_redirect => return conflict("route and redirect"),
            _ if has_route && has_direct => return conflict("route and directResponse"),
            _ if has_redirect && has_direct => return conflict("redirect and directResponse"),
            _ if r.fault.is_some() && (has_redirect || has_direct) => {
                return conflict("fault and redirect/directResponse")
            }
            _ if r.rewrite.is_some() && (has_redirect || has_direct) => {
                return conflict("rewrite and redirect/directResponse")
            }
            _ if !has_route && !has_redirect && !has_direct => {
                return Err(self.err(at, "HTTP route, redirect or directResponse is required"))
            }
            _ => {}
        }
        let matches = r
            .matches
            .iter()
            .enumerate()
            .map(|(i, m)| self.http_match(&format!("{at}.match[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        let headers = self.header_ops(&format!("{at}.headers"), r.headers.as_ref())?;
        let rewrite = r
            .rewrite
            .as_ref()
            .map(|rw| self.rewrite(&format!("{at}.rewrite"), rw))
            .transpose()?;
        let rewrite_authority = rewrite.as_ref().and_then(|rw| rw.authority.as_ref());
        if let (Some(a), Some(b)) = (rewrite_authority, &headers.request.authority) {
            return Err(self.err(
                &format!("{at}.headers.request"),
                format!("authority header cannot be set multiple times: have {a:?}, attempting to set {b:?}"),
            ));
        }
        let action = if let Some(redirect) = &r.redirect {
            RouteAction::Redirect(self.redirect(&format!("{at}.redirect"), redirect)?)
        } else if let Some(d) = &r.direct_response {
            let at = format!("{at}.directResponse");
            let status =
                status(d.status, 200..=599).map_err(|e| self.err(&format!("{at}.status"), e))?;
            let body = match &d.body {
                Some(b) if b.bytes.is_some() => {
                    return Err(self.err(
                        &format!("{at}.body.bytes"),
                        "not supported by egret yet; use body.string",
                    ))
                }
                Some(b) => b.string.clone(),
                None => None,
            };
            RouteAction::DirectResponse { status, body }
        } else {
            RouteAction::Forward(self.http_destinations(&format!("{at}.route"), r)?)
        };
        Ok(CompiledHttpRoute {
            name: r.name.clone(),
            virtual_service: format!("{}/{}", self.namespace, self.name),
            matches,
            action,
            rewrite,
            headers,
            timeout: r
                .timeout
                .as_deref()
                .map(duration::parse)
                .transpose()
                .map_err(|e| self.err(&format!("{at}.timeout"), e))?,
            retries: self
                .retries(&format!("{at}.retries"), r.retries.as_ref())?
                .map(std::sync::Arc::new),
            fault: r
                .fault
                .as_ref()
                .map(|f| self.fault(&format!("{at}.fault"), f))
                .transpose()?,
        })
    }

    fn http_match(&self, at: &str, m: &HttpMatchRequest) -> Result<CompiledMatch, RouteError> {
        let opt = |field: &str, v: &Option<StringMatch>| {
            v.as_ref()
                .map(|s| self.str_match(&format!("{at}.{field}"), s))
                .transpose()
        };
        let uri = match &m.uri {
            None => None,
            Some(u) => {
                let field = format!("{at}.uri");
                match (&u.exact, &u.prefix, &u.regex) {
                    (Some(e), None, None) => Some(UriMatch::Exact(e.clone())),
                    (None, Some(p), None) => Some(UriMatch::Prefix(p.clone())),
                    (None, None, Some(r)) => Some(UriMatch::Regex(anchored(
                        &format!("{field}.regex"),
                        r,
                        self,
                    )?)),
                    (None, None, None) => None,
                    _ => {
                        return Err(
                            self.err(&field, "only one of exact, prefix or regex may be set")
                        )
                    }
                }
            }
        };
        let named = |field: &str, map: &std::collections::BTreeMap<String, Option<StringMatch>>| {
            map.iter()
                .map(|(k, v)| {
                    let at = format!("{at}.{field}[{k}]");
                    let name =
                        HeaderKey::parse(&k.to_ascii_lowercase()).map_err(|e| self.err(&at, e))?;
                    let m = match v {
                        Some(s) => self.str_match(&at, s)?,
                        None => StringMatcher::Present,
                    };
                    Ok((name, m))
                })
                .collect::<Result<Vec<_>, RouteError>>()
        };
        let query_params = m
            .query_params
            .iter()
            .map(|(k, v)| {
                let at = format!("{at}.queryParams[{k}]");
                let m = match v {
                    Some(s) => self.str_match(&at, s)?,
                    None => StringMatcher::Present,
                };
                Ok((k.clone(), m))
            })
            .collect::<Result<Vec<_>, RouteError>>()?;
        Ok(CompiledMatch {
            uri,
            ignore_uri_case: m.ignore_uri_case,
            scheme: opt("scheme", &m.scheme)?,
            method: opt("method", &m.method)?,
            authority: opt("authority", &m.authority)?,
            headers: named("headers", &m.headers)?,
            without_headers: named("withoutHeaders", &m.without_headers)?,
            query_params,
            port: m
                .port
                .map(|p| port(p).map_err(|e| self.err(&format!("{at}.port"), e)))
                .transpose()?,
            source_namespace: m.source_namespace.clone(),
        })
    }

    /// `{}` and empty exact/prefix mean "present"; regex `*` too (Istio's special case).
    fn str_match(&self, at: &str, s: &StringMatch) -> Result<StringMatcher, RouteError> {
        match (&s.exact, &s.prefix, &s.regex) {
            (None, None, None) => Ok(StringMatcher::Present),
            (Some(e), None, None) if e.is_empty() => Ok(StringMatcher::Present),
            (Some(e), None, None) => Ok(StringMatcher::Exact(e.clone())),
            (None, Some(p), None) if p.is_empty() => Ok(StringMatcher::Present),
            (None, Some(p), None) => Ok(StringMatcher::Prefix(p.clone())),
            (None, None, Some(r)) if r == "*" => Ok(StringMatcher::Present),
            (None, None, Some(r)) => Ok(StringMatcher::Regex(anchored(
                &format!("{at}.regex"),
                r,
                self,
            )?)),
            _ => Err(self.err(at, "only one of exact, prefix or regex may be set")),
        }
    }

    fn http_destinations(
        &self,
        at: &str,
        r: &HttpRoute,
    ) -> Result<Vec<CompiledDestination>, RouteError> {
        let mut total: i64 = 0;
        let mut out = Vec::with_capacity(r.route.len());
        for (i, d) in r.route.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let weight = d.weight.unwrap_or(0);
            if weight < 0 {
                return Err(self.err(&format!("{at}.weight"), format!("weight {weight} < 0")));
            }
            total += i64::from(weight);
            let mut dest =
                self.destination(&format!("{at}.destination"), &d.destination, weight as u32)?;
            dest.headers = self.header_ops(&format!("{at}.headers"), d.headers.as_ref())?;
            out.push(dest);
        }
        if out.len() > 1 && total == 0 {
            return Err(self.err(at, "total destination weight = 0"));
        }
        Ok(out)
    }

    fn destination(
        &self,
        at: &str,
        d: &Destination,
        weight: u32,
    ) -> Result<CompiledDestination, RouteError> {
        if d.host.is_empty() || d.host == "*" {
            return Err(self.err(
                &format!("{at}.host"),
                format!("invalid destination host {:?}", d.host),
            ));
        }
        if d.subset.as_deref() == Some("") {
            return Err(self.err(&format!("{at}.subset"), "subset name cannot be empty"));
        }
        Ok(CompiledDestination {
            host: self.host(&format!("{at}.host"), &d.host)?,
            subset: d.subset.clone(),
            port: d
                .port
                .as_ref()
                .map(|p| port(p.number).map_err(|e| self.err(&format!("{at}.port.number"), e)))
                .transpose()?,
            weight,
            headers: HeaderOps::default(),
        })
    }

    fn header_ops(&self, at: &str, h: Option<&Headers>) -> Result<HeaderOps, RouteError> {
        let Some(h) = h else {
            return Ok(HeaderOps::default());
        };
        Ok(HeaderOps {
            request: self.op_list(&format!("{at}.request"), h.request.as_ref(), true)?,
            response: self.op_list(&format!("{at}.response"), h.response.as_ref(), false)?,
        })
    }

    /// Istio turns `host`/`:authority` in request set/add into an authority rewrite
    /// and drops `:`-prefixed and `host` names from `remove`.
    fn op_list(
        &self,
        at: &str,
        ops: Option<&HeaderOperations>,
        request: bool,
    ) -> Result<HeaderOpList, RouteError> {
        let mut out = HeaderOpList::default();
        let Some(ops) = ops else {
            return Ok(out);
        };
        for (field, map, list) in [("set", &ops.set, 0), ("add", &ops.add, 1)] {
            for (k, v) in map {
                let at = format!("{at}.{field}[{k}]");
                if is_authority(k) {
                    if !request {
                        return Err(
                            self.err(&at, "the authority can only be rewritten on requests")
                        );
                    }
                    // `set` wins over `add` when both name the authority.
                    if list == 0 || out.authority.is_none() {
                        out.authority = Some(v.clone());
                    }
                    continue;
                }
                if k.starts_with(':') {
                    return Err(self.err(&at, "pseudo-headers cannot be modified"));
                }
                let name = header_name(k).map_err(|e| self.err(&at, e))?;
                let value = HeaderValue::from_str(v)
                    .map_err(|_| self.err(&at, format!("invalid header value {v:?}")))?;
                if list == 0 {
                    &mut out.set
                } else {
                    &mut out.add
                }
                .push((name, value));
            }
        }
        for (i, k) in ops.remove.iter().enumerate() {
            if k.starts_with(':') || k.eq_ignore_ascii_case("host") {
                continue;
            }
            out.remove
                .push(header_name(k).map_err(|e| self.err(&format!("{at}.remove[{i}]"), e))?);
        }
        Ok(out)
    }

    fn rewrite(&self, at: &str, rw: &super::spec::HttpRewrite) -> Result<Rewrite, RouteError> {
        let empty = |o: &Option<String>| o.as_deref().is_none_or(str::is_empty);
        if !empty(&rw.uri) && rw.uri_regex_rewrite.is_some() {
            return Err(self.err(at, "rewrite may only contain one of uri or uriRegexRewrite"));
        }
        if empty(&rw.uri) && rw.uri_regex_rewrite.is_none() && empty(&rw.authority) {
            return Err(self.err(
                at,
                "rewrite must specify at least one of uri, uriRegexRewrite or authority",
            ));
        }
        let regex = match &rw.uri_regex_rewrite {
            None => None,
            Some(r) if r.pattern.is_empty() || r.rewrite.is_empty() => {
                return Err(self.err(
                    &format!("{at}.uriRegexRewrite"),
                    "requires both match and rewrite",
                ))
            }
            Some(r) => {
                let re = Regex::new(&r.pattern).map_err(|e| {
                    self.err(
                        &format!("{at}.uriRegexRewrite.match"),
                        format!("invalid regex: {e}"),
                    )
                })?;
                Some((re, substitution(&r.rewrite)))
            }
        };
        if let Some(uri) = rw.uri.as_deref().filter(|u| !u.is_empty()) {
            if !uri.starts_with('/') || uri.parse::<http::uri::PathAndQuery>().is_err() {
                return Err(self.err(&format!("{at}.uri"), format!("invalid path {uri:?}")));
            }
        }
        Ok(Rewrite {
            uri: rw.uri.clone().filter(|u| !u.is_empty()),
            regex,
            authority: rw.authority.clone().filter(|a| !a.is_empty()),
        })
    }

    fn redirect(&self, at: &str, r: &super::spec::HttpRedirect) -> Result<Redirect, RouteError> {
        let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let path = match (nonempty(&r.uri), nonempty(&r.prefix_rewrite)) {
            (Some(_), Some(_)) => {
                return Err(self.err(at, "only one of uri or prefixRewrite may be set"))
            }
            (Some(uri), None) => Some(RedirectPath::Full(uri)),
            (None, Some(prefix)) => Some(RedirectPath::Prefix(prefix)),
            (None, None) => None,
        };
        let port = match (r.port, r.derive_port.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(self.err(at, "only one of port or derivePort may be set"))
            }
            (Some(p), None) => {
                RedirectPort::Port(port(p).map_err(|e| self.err(&format!("{at}.port"), e))?)
            }
            (None, Some("FROM_REQUEST_PORT")) => RedirectPort::FromRequest,
            (None, None | Some("FROM_PROTOCOL_DEFAULT")) => RedirectPort::Unchanged,
            (None, Some(other)) => {
                return Err(self.err(
                    &format!("{at}.derivePort"),
                    format!("unknown value {other:?} (FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT)"),
                ))
            }
        };
        Ok(Redirect {
            path,
            authority: nonempty(&r.authority),
            port,
            scheme: nonempty(&r.scheme),
            status: match r.redirect_code {
                None => StatusCode::MOVED_PERMANENTLY,
                Some(c) => {
                    status(c, 300..=399).map_err(|e| self.err(&format!("{at}.redirectCode"), e))?
                }
            },
        })
    }

    fn retries(&self, at: &str, r: Option<&HttpRetry>) -> Result<Option<RetryPolicy>, RouteError> {
        let Some(r) = r else {
            return Ok(Some(RetryPolicy::istio_default()));
        };
        if r.attempts < 0 {
            return Err(self.err(&format!("{at}.attempts"), "attempts cannot be negative"));
        }
        if r.attempts == 0 {
            if r.per_try_timeout.is_some()
                || r.retry_on.is_some()
                || r.retry_remote_localities.is_some()
            {
                return Err(self.err(
                    at,
                    "http retry policy configured when attempts are set to 0 (disabled)",
                ));
            }
            return Ok(None);
        }
        let mut policy = RetryPolicy::istio_default();
        policy.attempts = r.attempts as u32;
        if let Some(t) = &r.per_try_timeout {
            policy.per_try_timeout =
                Some(duration::parse(t).map_err(|e| self.err(&format!("{at}.perTryTimeout"), e))?);
        }
        if let Some(b) = &r.backoff {
            duration::parse(b).map_err(|e| self.err(&format!("{at}.backoff"), e))?;
        }
        if let Some(on) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
            policy.retry_on.clear();
            for part in on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<u16>() {
                    Ok(code)
                        if StatusCode::from_u16(code)
                            .is_ok_and(|s| s.canonical_reason().is_some()) =>
                    {
                        policy.retriable_status_codes.push(code)
                    }
                    _ if RETRY_ON.contains(&part) => policy.retry_on.push(part.to_string()),
                    _ => {
                        return Err(self.err(
                            &format!("{at}.retryOn"),
                            format!("{part:?} is not a valid retryOn policy"),
                        ))
                    }
                }
            }
            if !policy.retriable_status_codes.is_empty()
                && !policy
                    .retry_on
                    .iter()
                    .any(|p| p == "retriable-status-codes")
            {
                policy.retry_on.push("retriable-status-codes".into());
            }
        }
        Ok(Some(policy))
    }

    fn fault(&self, at: &str, f: &HttpFaultInjection) -> Result<Fault, RouteError> {
        if f.delay.is_none() && f.abort.is_none() {
            return Err(self.err(at, "HTTP fault injection must have an abort and/or a delay"));
        }
        let percent = |at: &str, v: f64| {
            if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
                return Err(self.err(
                    at,
                    format!("percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"),
                ));
            }
            Ok(v)
        };
        let delay = match &f.delay {
            None => None,
            Some(d) => {
                let at = format!("{at}.delay");
                if d.exponential_delay.is_some() {
                    return Err(self.err(
                        &format!("{at}.exponentialDelay"),
                        "exponentialDelay not supported yet",
                    ));
                }
                let fixed = d
                    .fixed_delay
                    .as_deref()
                    .ok_or_else(|| self.err(&format!("{at}.fixedDelay"), "must be set"))?;
                let fixed =
                    duration::parse(fixed).map_err(|e| self.err(&format!("{at}.fixedDelay"), e))?;
                let pct = match (&d.percentage, d.percent) {
                    (Some(p), _) => percent(&format!("{at}.percentage.value"), p.value)?,
                    (None, Some(p)) => percent(&format!("{at}.percent"), f64::from(p))?,
                    (None, None) => 0.0,
                };
                Some((fixed, pct))
            }
        };
        let abort = match &f.abort {
            None => None,
            Some(a) => {
                let at = format!("{at}.abort");
                if a.grpc_status.is_some() {
                    return Err(self.err(
                        &format!("{at}.grpcStatus"),
                        "gRPC abort faults are not supported by egret yet",
                    ));
                }
                if a.http2_error.is_some() {
                    return Err(self.err(
                        &format!("{at}.http2Error"),
                        "HTTP/2 abort fault injection not supported yet",
                    ));
                }
                let code = a
                    .http_status
                    .ok_or_else(|| self.err(&format!("{at}.httpStatus"), "must be set"))?;
                let code = u32::try_from(code).unwrap_or(0);
                let code = status(code, 200..=599)
                    .map_err(|e| self.err(&format!("{at}.httpStatus"), e))?;
                let pct = match &a.percentage {
                    Some(p) => percent(&format!("{at}.percentage.value"), p.value)?,
                    None => 0.0,
                };
                Some((code, pct))
            }
        };
        Ok(Fault { delay, abort })
    }

    fn l4_route(
        &self,
        at: &str,
        tls: bool,
        matches: &[L4Match],
        route: &[super::spec::RouteDestination],
    ) -> Result<CompiledL4Route, RouteError> {
        let matches = matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let at = format!("{at}.match[{i}]");
                if tls && m.sni_hosts.is_empty() {
                    return Err(self.err(
                        &format!("{at}.sniHosts"),
                        "TLS matches need at least one SNI host",
                    ));
                }
                if !tls && !m.sni_hosts.is_empty() {
                    return Err(self.err(&format!("{at}.sniHosts"), "only valid in tls routes"));
                }
                if m.source_subnet.is_some() {
                    return Err(self.err(&format!("{at}.sourceSubnet"), "not supported by egret"));
                }
                let destination_subnets = m
                    .destination_subnets
                    .iter()
                    .enumerate()
                    .map(|(j, s)| {
                        cidr(s).map_err(|e| self.err(&format!("{at}.destinationSubnets[{j}]"), e))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(CompiledL4Match {
                    sni_hosts: m.sni_hosts.iter().map(|s| HostName::new(s)).collect(),
                    destination_subnets,
                    port: m
                        .port
                        .map(|p| port(p).map_err(|e| self.err(&format!("{at}.port"), e)))
                        .transpose()?,
                    source_namespace: m.source_namespace.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut total: i64 = 0;
        let destinations = route
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let weight = d.weight.unwrap_or(0);
                if weight < 0 {
                    return Err(self.err(
                        &format!("{at}.route[{i}].weight"),
                        format!("weight {weight} < 0"),
                    ));
                }
                total += i64::from(weight);
                self.destination(
                    &format!("{at}.route[{i}].destination"),
                    &d.destination,
                    weight as u32,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if destinations.is_empty() {
            return Err(self.err(
                &format!("{at}.route"),
                "at least one destination is required",
            ));
        }
        if destinations.len() > 1 && total == 0 {
            return Err(self.err(&format!("{at}.route"), "total destination weight = 0"));
        }
        Ok(CompiledL4Route {
            matches,
            destinations,
        })
    }
}

/// Anchors a regex: Envoy's route matchers require a full match.
fn anchored(at: &str, re: &str, cx: &Cx<'_>) -> Result<Regex, RouteError> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| cx.err(at, format!("invalid regex {re:?}: {e}")))
}

fn header_name(k: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name {k:?}"))
}

fn is_authority(k: &str) -> bool {
    k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case(":authority")
}

fn port(p: u32) -> Result<u16, String> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port number {p} must be in the range 1..65535"))
}

fn status(code: u32, range: std::ops::RangeInclusive<u32>) -> Result<StatusCode, String> {
    if !range.contains(&code) {
        return Err(format!(
            "HTTP status {code} is not in range {}-{}",
            range.start(),
            range.end()
        ));
    }
    StatusCode::from_u16(code as u16).map_err(|e| e.to_string())
}

fn cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("bad IP address or CIDR range {s:?}"))
}

/// RE2's `\1` becomes the regex crate's `${1}`; a literal `$` is escaped.
fn substitution(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len());
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

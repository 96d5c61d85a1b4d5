//! Applying a matched route: destination choice, header operations, rewrites,
//! fault decisions. Random numbers are passed in so tests are deterministic.
//!
//! Header operation order follows what Istio generates and Envoy executes: each
//! level removes, then sets (overwrite), then adds (append). With one destination
//! Istio merges its operations after the route's into one level; with several,
//! the chosen destination's level runs first and the route's level after it
//! (Envoy's default, most specific first), so a route `set` wins.

use std::time::Duration;

use http::header::{HeaderValue, HOST};
use http::uri::{PathAndQuery, Uri};
use http::{request, response, HeaderMap, StatusCode};

use super::compiled::{CompiledDestination, CompiledHttpRoute, HeaderOpList, RouteAction};
use super::table::MatchedRoute;

/// Picks a destination of a forwarding route by weight; `rand` is uniform over u32.
/// A single destination is always picked, whatever its weight.
pub fn pick_destination(route: &CompiledHttpRoute, rand: u32) -> Option<&CompiledDestination> {
    let RouteAction::Forward(dests) = &route.action else {
        return None;
    };
    pick_weighted(dests, rand)
}

/// Picks one of `dests` by weight (a `tls`/`tcp` route's, or an HTTP
/// route's); `rand` is uniform over u32. A single destination is always picked.
pub fn pick_weighted(dests: &[CompiledDestination], rand: u32) -> Option<&CompiledDestination> {
    if dests.len() <= 1 {
        return dests.first();
    }
    let total: u64 = dests.iter().map(|d| u64::from(d.weight)).sum();
    let mut point = u64::from(rand) % total;
    for d in dests {
        if point < u64::from(d.weight) {
            return Some(d);
        }
        point -= u64::from(d.weight);
    }
    dests.last()
}

/// Rewrites the request for the upstream: header operations, then `rewrite.authority`
/// (or a `host` header operation), then `rewrite.uri` / `uriRegexRewrite`.
pub fn apply_request(
    matched: &MatchedRoute<'_>,
    dest: Option<&CompiledDestination>,
    parts: &mut request::Parts,
) -> Result<(), http::Error> {
    let route = matched.route;
    apply_levels(route, dest, &mut parts.headers, |ops| &ops.request);

    let route_authority = route
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.as_ref())
        .or(route.headers.request.authority.as_ref());
    // Istio: a destination's authority only applies when the route sets none.
    let authority =
        route_authority.or_else(|| dest.and_then(|d| d.headers.request.authority.as_ref()));
    if let Some(authority) = authority {
        parts
            .headers
            .insert(HOST, HeaderValue::from_str(authority)?);
        if parts.uri.authority().is_some() {
            let mut uri = parts.uri.clone().into_parts();
            uri.authority = Some(authority.parse()?);
            parts.uri = Uri::from_parts(uri)?;
        }
    }

    if let Some(rw) = &route.rewrite {
        let pq = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let (path, query) = pq.split_once('?').map_or((pq, None), |(p, q)| (p, Some(q)));
        let new_path = if let Some(prefix) = &rw.uri {
            // Envoy's prefix_rewrite: the matched prefix (whole path for exact/regex) is replaced.
            let cut = matched.matched_prefix_len.min(path.len());
            Some(format!("{prefix}{}", &path[cut..]))
        } else {
            rw.regex
                .as_ref()
                .map(|(re, sub)| re.replace_all(path, sub.as_str()).into_owned())
        };
        if let Some(new_path) = new_path {
            let pq = match query {
                Some(q) => format!("{new_path}?{q}"),
                None => new_path,
            };
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(pq.parse()?);
            parts.uri = Uri::from_parts(uri)?;
        }
    }
    Ok(())
}

/// Applies the route's and destination's `headers.response` operations.
pub fn apply_response(
    route: &CompiledHttpRoute,
    dest: Option<&CompiledDestination>,
    parts: &mut response::Parts,
) {
    apply_levels(route, dest, &mut parts.headers, |ops| &ops.response);
}

fn apply_levels(
    route: &CompiledHttpRoute,
    dest: Option<&CompiledDestination>,
    headers: &mut HeaderMap,
    side: fn(&super::compiled::HeaderOps) -> &HeaderOpList,
) {
    let single = matches!(&route.action, RouteAction::Forward(d) if d.len() <= 1);
    let route_ops = side(&route.headers);
    match dest.map(|d| side(&d.headers)).filter(|o| !o.is_empty()) {
        None => apply_level(headers, &[route_ops]),
        Some(dest_ops) if single => apply_level(headers, &[route_ops, dest_ops]),
        Some(dest_ops) => {
            apply_level(headers, &[dest_ops]);
            apply_level(headers, &[route_ops]);
        }
    }
}

/// One Envoy header-parser level built from `lists` in order: remove, set, add.
fn apply_level(headers: &mut HeaderMap, lists: &[&HeaderOpList]) {
    for name in lists.iter().flat_map(|l| l.remove.iter()) {
        headers.remove(name);
    }
    for (name, value) in lists.iter().flat_map(|l| l.set.iter()) {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in lists.iter().flat_map(|l| l.add.iter()) {
        headers.append(name.clone(), value.clone());
    }
}

/// What fault injection does to one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultDecision {
    /// Wait this long before proceeding.
    pub delay: Option<Duration>,
    /// Reply with this status instead of forwarding.
    pub abort: Option<StatusCode>,
}

/// Decides faults for one request; `delay_rand` and `abort_rand` are uniform in `[0, 1)`.
pub fn fault_decision(
    route: &CompiledHttpRoute,
    delay_rand: f64,
    abort_rand: f64,
) -> FaultDecision {
    let Some(fault) = &route.fault else {
        return FaultDecision::default();
    };
    FaultDecision {
        delay: fault
            .delay
            .filter(|(_, pct)| delay_rand * 100.0 < *pct)
            .map(|(d, _)| d),
        abort: fault
            .abort
            .filter(|(_, pct)| abort_rand * 100.0 < *pct)
            .map(|(s, _)| s),
    }
}

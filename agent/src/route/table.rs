//! All VirtualServices bound to waypoints, indexed by host.
//!
//! Host lookup: the exact host first, then the longest matching `*.suffix`
//! wildcard, then `*`. Several VirtualServices for the same host are merged by
//! concatenating their routes in the order given to [`RouteTable::new`]; the caller
//! passes them oldest first (creationTimestamp, then namespace/name), the order
//! Istio uses to resolve conflicts, so the oldest VirtualService's routes win.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::compiled::{
    CompiledHttpRoute, CompiledL4Match, CompiledL4Route, CompiledVirtualService,
};
use super::matching::HttpRequestView;
use crate::net::HostName;

/// Outcome of [`RouteTable::route_http`].
#[derive(Clone, Copy, Debug)]
pub enum RouteResult<'a> {
    /// No VirtualService for the host: use the default route to the host itself.
    NoVirtualService,
    /// The first route whose match holds.
    Matched(MatchedRoute<'a>),
    /// VirtualServices exist for the host but no route matched: reply 404, as Envoy does.
    NoRouteMatched,
}

/// A matched HTTP route and how much of the path its `uri` match consumed.
#[derive(Clone, Copy, Debug)]
pub struct MatchedRoute<'a> {
    /// The route (an `Arc`: the response stage may keep it).
    pub route: &'a Arc<CompiledHttpRoute>,
    /// Length of the matched path prefix, replaced by `rewrite.uri`.
    pub matched_prefix_len: usize,
}

/// Routes of one host, from every VirtualService naming it, in order.
#[derive(Debug, Default)]
struct HostRoutes {
    services: Vec<Arc<CompiledVirtualService>>,
}

impl HostRoutes {
    fn http(&self) -> impl Iterator<Item = &Arc<CompiledHttpRoute>> {
        self.services.iter().flat_map(|vs| vs.http.iter())
    }

    fn tls(&self) -> impl Iterator<Item = &CompiledL4Route> {
        self.services.iter().flat_map(|vs| vs.tls.iter())
    }

    fn tcp(&self) -> impl Iterator<Item = &CompiledL4Route> {
        self.services.iter().flat_map(|vs| vs.tcp.iter())
    }
}

/// Immutable routing table; rebuild and swap on each config change.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: HashMap<HostName, HostRoutes>,
    /// `(wildcard host, routes)`, longest (most specific) first; `*` last.
    wildcard: Vec<(HostName, HostRoutes)>,
    warnings: Vec<String>,
}

impl RouteTable {
    /// Indexes `services` by host, keeping their order.
    pub fn new(services: Vec<Arc<CompiledVirtualService>>) -> Self {
        let mut table = RouteTable::default();
        let mut wildcard: HashMap<HostName, HostRoutes> = HashMap::new();
        for vs in services {
            if !vs.applies_to_mesh {
                table.warnings.push(format!(
                    "VirtualService {}: bound to gateways only (no `mesh`); not applied at waypoints",
                    vs.id()
                ));
                continue;
            }
            for host in &vs.hosts {
                let routes = if host.is_wildcard() {
                    wildcard.entry(host.clone()).or_default()
                } else {
                    table.exact.entry(host.clone()).or_default()
                };
                routes.services.push(vs.clone());
            }
        }
        table.wildcard = wildcard.into_iter().collect();
        table
            .wildcard
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        table
    }

    /// VirtualServices that were accepted but never apply at a waypoint.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many VirtualServices apply at waypoints (one naming several
    /// hosts counts once).
    pub fn len(&self) -> usize {
        let all = self
            .exact
            .values()
            .chain(self.wildcard.iter().map(|(_, r)| r));
        let distinct: std::collections::HashSet<*const CompiledVirtualService> = all
            .flat_map(|r| r.services.iter().map(Arc::as_ptr))
            .collect();
        distinct.len()
    }

    /// Whether no VirtualService applies at waypoints.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    fn lookup(&self, host: &str) -> Option<&HostRoutes> {
        let host = host
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let host = HostName::fully_qualified(host);
        if let Some(r) = self.exact.get(&host) {
            return Some(r);
        }
        self.wildcard
            .iter()
            .find(|(wildcard, _)| wildcard.covers(&host))
            .map(|(_, r)| r)
    }

    /// Routes an HTTP request for `host` (a service hostname; a `:port` is ignored).
    /// First matching route wins.
    pub fn route_http(&self, host: &str, req: &HttpRequestView<'_>) -> RouteResult<'_> {
        let Some(routes) = self.lookup(host) else {
            return RouteResult::NoVirtualService;
        };
        let mut any = false;
        for route in routes.http() {
            any = true;
            let hit = if route.matches.is_empty() {
                Some(1)
            } else {
                route.matches.iter().find_map(|m| m.matches(req))
            };
            if let Some(matched_prefix_len) = hit {
                return RouteResult::Matched(MatchedRoute {
                    route,
                    matched_prefix_len,
                });
            }
        }
        if any {
            RouteResult::NoRouteMatched
        } else {
            RouteResult::NoVirtualService
        }
    }

    /// First `tls` route for `host` whose match holds for the connection (needs its SNI).
    pub fn route_tls(&self, host: &str, conn: &L4View<'_>) -> Option<&CompiledL4Route> {
        let sni = HostName::new(conn.sni?);
        self.lookup(host)?.tls().find(|r| {
            r.matches
                .iter()
                .any(|m| m.sni_hosts.iter().any(|h| h.covers(&sni)) && l4_common(m, conn))
        })
    }

    /// Whether a VirtualService has `tls` routes for `host`: then a TLS
    /// connection none of them matches has no route.
    pub fn has_tls_routes(&self, host: &str) -> bool {
        self.lookup(host).is_some_and(|r| r.tls().next().is_some())
    }

    /// First `tcp` route for `host` whose match holds for the connection.
    pub fn route_tcp(&self, host: &str, conn: &L4View<'_>) -> Option<&CompiledL4Route> {
        self.lookup(host)?
            .tcp()
            .find(|r| r.matches.is_empty() || r.matches.iter().any(|m| l4_common(m, conn)))
    }
}

/// What TLS/TCP route matching looks at.
#[derive(Clone, Copy, Debug)]
pub struct L4View<'a> {
    /// TLS server name, if any.
    pub sni: Option<&'a str>,
    /// Original destination IP.
    pub destination: IpAddr,
    /// Original destination port.
    pub port: u16,
    /// Namespace of the verified peer identity, if any.
    pub source_namespace: Option<&'a str>,
}

fn l4_common(m: &CompiledL4Match, conn: &L4View<'_>) -> bool {
    let ip = conn.destination.to_canonical();
    (m.destination_subnets.is_empty() || m.destination_subnets.iter().any(|n| n.contains(&ip)))
        && m.port.is_none_or(|p| p == conn.port)
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| conn.source_namespace == Some(ns))
}

//! VirtualService `redirect`: the `location` Envoy builds from the
//! RedirectAction Istio generates (istio/istio `route.go` `ApplyRedirect`,
//! Envoy `Http::Utility::newUri`). The request's URL keeps every part the
//! redirect does not replace: the query stays (unless a new `uri` brings its
//! own), the Host's port stays unless a port is set or the scheme changes
//! away from the default port, `prefixRewrite` swaps only the matched prefix.

use http::StatusCode;

/// The path part of a redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectPath {
    /// `uri`: the whole path (a query in it replaces the request's).
    Full(String),
    /// `prefixRewrite`: the matched prefix replaced.
    Prefix(String),
}

/// The port part of a redirect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectPort {
    /// None set, or `derivePort: FROM_PROTOCOL_DEFAULT`: the Host's port, if
    /// any, as Envoy keeps it.
    Unchanged,
    /// `derivePort: FROM_REQUEST_PORT`: the port the request came to.
    FromRequest,
    /// `port`.
    Port(u16),
}

/// `redirect`, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// New path, if any.
    pub path: Option<RedirectPath>,
    /// New authority.
    pub authority: Option<String>,
    /// New port.
    pub port: RedirectPort,
    /// New scheme.
    pub scheme: Option<String>,
    /// Status (301 by default).
    pub status: StatusCode,
}

/// The parts of a request a redirect is built from.
#[derive(Clone, Copy, Debug)]
pub struct RedirectRequest<'a> {
    /// `http` or `https`, as the request came.
    pub scheme: &'a str,
    /// `Host` / `:authority` as sent, port included.
    pub host: &'a str,
    /// Path and query (already normalized).
    pub path_and_query: &'a str,
    /// Length of the path prefix the route matched.
    pub matched_prefix_len: usize,
    /// The service port the request came to.
    pub port: u16,
}

impl Redirect {
    /// The `location` to answer `req` with.
    pub fn location(&self, req: &RedirectRequest<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(req.scheme);
        let port = match self.port {
            RedirectPort::Unchanged => None,
            RedirectPort::FromRequest => Some(req.port),
            RedirectPort::Port(p) => Some(p),
        }
        // Istio leaves out :80 for http and :443 for https.
        .filter(|p| !matches!((*p, scheme), (80, "http") | (443, "https")));
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let host = match &self.authority {
            Some(authority) => authority.as_str(),
            None => request_host(req.host, req.scheme, scheme, !port.is_empty()),
        };
        let mut path = match &self.path {
            None => req.path_and_query.to_string(),
            Some(RedirectPath::Full(p)) if p.contains('?') => p.clone(),
            Some(RedirectPath::Full(p)) => match req.path_and_query.find('?') {
                Some(q) => format!("{p}{}", &req.path_and_query[q..]),
                None => p.clone(),
            },
            Some(RedirectPath::Prefix(p)) => {
                let cut = req.matched_prefix_len.min(req.path_and_query.len());
                format!("{p}{}", &req.path_and_query[cut..])
            }
        };
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        format!("{scheme}://{host}{port}{path}")
    }
}

/// Envoy's `processRequestHost`: the Host loses its port when a new port is
/// set, or when the scheme changes and the port was the old scheme's default.
fn request_host<'a>(host: &'a str, old_scheme: &str, new_scheme: &str, new_port: bool) -> &'a str {
    let port_at = if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    let Some(at) = port_at else {
        return host;
    };
    let old_port = &host[at..];
    let default_port = matches!((old_scheme, old_port), ("https", ":443") | ("http", ":80"));
    if new_port || (new_scheme != old_scheme && default_port) {
        &host[..at]
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(path: Option<RedirectPath>, port: RedirectPort, scheme: Option<&str>) -> Redirect {
        Redirect {
            path,
            authority: None,
            port,
            scheme: scheme.map(str::to_string),
            status: StatusCode::MOVED_PERMANENTLY,
        }
    }

    fn req<'a>(host: &'a str, path_and_query: &'a str) -> RedirectRequest<'a> {
        RedirectRequest {
            scheme: "http",
            host,
            path_and_query,
            matched_prefix_len: 4,
            port: 8080,
        }
    }

    #[test]
    fn the_query_string_is_kept() {
        let full = |p: &str| {
            redirect(
                Some(RedirectPath::Full(p.into())),
                RedirectPort::Unchanged,
                None,
            )
        };
        let r = req("a.example", "/old/x?q=1&r=%2F");
        assert_eq!(full("/new").location(&r), "http://a.example/new?q=1&r=%2F");
        // A query in the new uri replaces the request's.
        assert_eq!(full("/new?z=2").location(&r), "http://a.example/new?z=2");
        assert_eq!(
            redirect(None, RedirectPort::Unchanged, None).location(&r),
            "http://a.example/old/x?q=1&r=%2F"
        );
    }

    #[test]
    fn prefix_rewrite_swaps_the_matched_prefix() {
        // The route matched prefix `/v1/` (4 bytes).
        let r = redirect(
            Some(RedirectPath::Prefix("/v2/".into())),
            RedirectPort::Unchanged,
            None,
        );
        assert_eq!(
            r.location(&req("a.example", "/v1/users?id=3")),
            "http://a.example/v2/users?id=3"
        );
    }

    #[test]
    fn ports_from_the_request_explicit_or_kept() {
        let r = req("a.example:8080", "/x");
        assert_eq!(
            redirect(None, RedirectPort::FromRequest, None).location(&r),
            "http://a.example:8080/x"
        );
        assert_eq!(
            redirect(None, RedirectPort::Port(9090), None).location(&r),
            "http://a.example:9090/x"
        );
        // Istio drops a port that is the scheme's default; Envoy then keeps
        // the Host as sent.
        assert_eq!(
            redirect(None, RedirectPort::Port(80), None).location(&req("a.example", "/x")),
            "http://a.example/x"
        );
        assert_eq!(
            redirect(None, RedirectPort::Port(80), None).location(&r),
            "http://a.example:8080/x"
        );
        assert_eq!(
            redirect(None, RedirectPort::Port(443), Some("https"))
                .location(&req("a.example", "/x")),
            "https://a.example/x"
        );
        // No port set: the Host's stays, but an http default goes with a new scheme.
        assert_eq!(
            redirect(None, RedirectPort::Unchanged, None).location(&r),
            "http://a.example:8080/x"
        );
        assert_eq!(
            redirect(None, RedirectPort::Unchanged, Some("https"))
                .location(&req("a.example:80", "/x")),
            "https://a.example/x"
        );
        assert_eq!(
            redirect(None, RedirectPort::FromRequest, None).location(&req("[::1]:80", "/x")),
            "http://[::1]:8080/x"
        );
    }

    #[test]
    fn authority_replaces_the_host() {
        let mut r = redirect(None, RedirectPort::Port(8443), Some("https"));
        r.authority = Some("b.example".into());
        assert_eq!(
            r.location(&req("a.example:80", "/x?y")),
            "https://b.example:8443/x?y"
        );
    }
}

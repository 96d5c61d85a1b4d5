//! Table-driven tests of VirtualService routing; cases follow Istio's route
//! translation and validation tests and the walkthrough.

mod apply;
mod matching;
mod validation;
mod walkthrough;

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    compile, CompiledVirtualService, HttpRequestView, RouteError, RouteResult, RouteTable,
    VirtualServiceSpec,
};

/// Compiles `yaml` (a `spec`) as VirtualService `ns/name`.
fn try_vs(ns: &str, name: &str, yaml: &str) -> Result<CompiledVirtualService, RouteError> {
    let spec: VirtualServiceSpec = serde_yaml::from_str(yaml).expect("spec parses");
    compile(ns, name, &spec)
}

/// Compiles a VirtualService that must be valid.
fn vs(ns: &str, name: &str, yaml: &str) -> Arc<CompiledVirtualService> {
    Arc::new(try_vs(ns, name, yaml).unwrap_or_else(|e| panic!("{e}")))
}

/// An owned request; [`Req::view`] borrows it like the proxy would.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path_and_query: &'static str,
    authority: &'static str,
    scheme: &'static str,
    port: u16,
    headers: HeaderMap,
    source_namespace: Option<&'static str>,
}

impl Req {
    /// `GET http://httpbin.org/get`.
    fn get(path_and_query: &'static str) -> Self {
        Req {
            method: "GET",
            path_and_query,
            authority: "httpbin.org",
            scheme: "http",
            port: 80,
            headers: HeaderMap::new(),
            source_namespace: Some("bookinfo"),
        }
    }

    fn method(mut self, m: &'static str) -> Self {
        self.method = m;
        self
    }

    fn authority(mut self, a: &'static str) -> Self {
        self.authority = a;
        self
    }

    fn port(mut self, p: u16) -> Self {
        self.port = p;
        self
    }

    fn scheme(mut self, s: &'static str) -> Self {
        self.scheme = s;
        self
    }

    fn source_ns(mut self, ns: Option<&'static str>) -> Self {
        self.source_namespace = ns;
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    fn view(&self) -> HttpRequestView<'_> {
        HttpRequestView {
            method: self.method,
            path_and_query: self.path_and_query,
            authority: self.authority,
            scheme: self.scheme,
            port: self.port,
            headers: &self.headers,
            source_namespace: self.source_namespace,
        }
    }
}

/// The name of the route taken, or `<none>` (no VirtualService) / `<404>`.
fn routed(table: &RouteTable, host: &str, req: &Req) -> String {
    match table.route_http(host, &req.view()) {
        RouteResult::NoVirtualService => "<none>".into(),
        RouteResult::NoRouteMatched => "<404>".into(),
        RouteResult::Matched(m) => m.route.name.clone().unwrap_or_default(),
    }
}

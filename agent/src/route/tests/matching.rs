//! Each match kind, first-match-wins, host lookup and merging.

use super::{routed, vs, Req};
use crate::route::RouteTable;

/// A VirtualService for httpbin.org with one route `hit` matching `matches` (YAML
/// list of match entries) followed by nothing else.
fn one_route(matches: &str) -> RouteTable {
    let yaml = format!(
        "hosts: [httpbin.org]\nhttp:\n- name: hit\n  match: {matches}\n  route: [{{destination: {{host: httpbin.org}}}}]"
    );
    RouteTable::new(vec![vs("istio-egress", "v", &yaml)])
}

#[test]
fn match_kinds() {
    let get = Req::get;
    // (case, match list, request, whether route `hit` is taken; otherwise 404)
    let cases: Vec<(&str, &str, Req, bool)> = vec![
        ("uri exact", "[{uri: {exact: /get}}]", get("/get"), true),
        (
            "uri exact ignores query",
            "[{uri: {exact: /get}}]",
            get("/get?a=1"),
            true,
        ),
        (
            "uri exact miss",
            "[{uri: {exact: /get}}]",
            get("/get/x"),
            false,
        ),
        (
            "uri prefix",
            "[{uri: {prefix: /status}}]",
            get("/status/418"),
            true,
        ),
        (
            "uri prefix miss",
            "[{uri: {prefix: /status}}]",
            get("/get"),
            false,
        ),
        (
            "uri regex full match",
            "[{uri: {regex: '/status/[0-9]+'}}]",
            get("/status/418"),
            true,
        ),
        (
            "uri regex is anchored",
            "[{uri: {regex: '/status/[0-9]+'}}]",
            get("/x/status/418"),
            false,
        ),
        (
            "uri case-sensitive",
            "[{uri: {prefix: /GET}}]",
            get("/get"),
            false,
        ),
        (
            "ignoreUriCase prefix",
            "[{uri: {prefix: /GET}, ignoreUriCase: true}]",
            get("/get"),
            true,
        ),
        (
            "ignoreUriCase exact",
            "[{uri: {exact: /Get}, ignoreUriCase: true}]",
            get("/gEt"),
            true,
        ),
        (
            "ignoreUriCase not for regex",
            "[{uri: {regex: /GET}, ignoreUriCase: true}]",
            get("/get"),
            false,
        ),
        (
            "method exact",
            "[{method: {exact: POST}}]",
            get("/").method("POST"),
            true,
        ),
        ("method miss", "[{method: {exact: POST}}]", get("/"), false),
        (
            "method regex",
            "[{method: {regex: 'GET|HEAD'}}]",
            get("/").method("HEAD"),
            true,
        ),
        (
            "authority exact with port",
            "[{authority: {exact: 'httpbin.org:8080'}}]",
            get("/").authority("httpbin.org:8080"),
            true,
        ),
        (
            "authority exact no port",
            "[{authority: {exact: httpbin.org}}]",
            get("/").authority("httpbin.org:8080"),
            false,
        ),
        (
            "authority prefix",
            "[{authority: {prefix: httpbin}}]",
            get("/"),
            true,
        ),
        (
            "scheme",
            "[{scheme: {exact: https}}]",
            get("/").scheme("https"),
            true,
        ),
        ("scheme miss", "[{scheme: {exact: https}}]", get("/"), false),
        ("port", "[{port: 80}]", get("/"), true),
        ("port miss", "[{port: 8080}]", get("/"), false),
        ("port other", "[{port: 8080}]", get("/").port(8080), true),
        (
            "header exact",
            "[{headers: {x-user: {exact: jason}}}]",
            get("/").header("x-user", "jason"),
            true,
        ),
        (
            "header exact miss",
            "[{headers: {x-user: {exact: jason}}}]",
            get("/").header("x-user", "bob"),
            false,
        ),
        (
            "header absent",
            "[{headers: {x-user: {exact: jason}}}]",
            get("/"),
            false,
        ),
        (
            "header prefix",
            "[{headers: {user-agent: {prefix: curl/}}}]",
            get("/").header("user-agent", "curl/8"),
            true,
        ),
        (
            "header regex",
            "[{headers: {x-v: {regex: 'v[12]'}}}]",
            get("/").header("x-v", "v2"),
            true,
        ),
        (
            "header regex anchored",
            "[{headers: {x-v: {regex: 'v[12]'}}}]",
            get("/").header("x-v", "xv2"),
            false,
        ),
        (
            "header {} means present",
            "[{headers: {x-v: {}}}]",
            get("/").header("x-v", ""),
            true,
        ),
        (
            "header {} absent",
            "[{headers: {x-v: {}}}]",
            get("/"),
            false,
        ),
        (
            "header exact empty means present",
            "[{headers: {x-v: {exact: ''}}}]",
            get("/").header("x-v", "anything"),
            true,
        ),
        (
            "header regex * means present",
            "[{headers: {x-v: {regex: '*'}}}]",
            get("/").header("x-v", "a"),
            true,
        ),
        (
            "header name lowercased",
            "[{headers: {X-User: {exact: jason}}}]",
            get("/").header("x-user", "jason"),
            true,
        ),
        // Pseudo-headers Istio allows in `headers` (Envoy keeps them in the map).
        (
            ":method",
            "[{headers: {':method': {exact: POST}}}]",
            get("/").method("POST"),
            true,
        ),
        (
            ":method miss",
            "[{headers: {':method': {exact: POST}}}]",
            get("/"),
            false,
        ),
        (
            ":path is path and query",
            "[{headers: {':path': {regex: '/get\\?a=.*'}}}]",
            get("/get?a=1"),
            true,
        ),
        (
            ":authority",
            "[{headers: {':authority': {prefix: httpbin}}}]",
            get("/"),
            true,
        ),
        (
            ":scheme",
            "[{headers: {':scheme': {exact: https}}}]",
            get("/"),
            false,
        ),
        (
            ":status is never on a request",
            "[{headers: {':status': {}}}]",
            get("/"),
            false,
        ),
        (
            "withoutHeaders :method",
            "[{withoutHeaders: {':method': {exact: DELETE}}}]",
            get("/").method("DELETE"),
            false,
        ),
        // A repeated header is matched as Envoy joins it: values and commas.
        (
            "repeated header joined",
            "[{headers: {x-v: {exact: 'a,b'}}}]",
            get("/").header("x-v", "a").header("x-v", "b"),
            true,
        ),
        (
            "repeated header not just the first",
            "[{headers: {x-v: {exact: a}}}]",
            get("/").header("x-v", "a").header("x-v", "b"),
            false,
        ),
        (
            "withoutHeaders present",
            "[{withoutHeaders: {x-debug: {}}}]",
            get("/").header("x-debug", "1"),
            false,
        ),
        (
            "withoutHeaders absent",
            "[{withoutHeaders: {x-debug: {}}}]",
            get("/"),
            true,
        ),
        (
            "withoutHeaders exact other value",
            "[{withoutHeaders: {x-env: {exact: prod}}}]",
            get("/").header("x-env", "dev"),
            true,
        ),
        (
            "withoutHeaders exact value",
            "[{withoutHeaders: {x-env: {exact: prod}}}]",
            get("/").header("x-env", "prod"),
            false,
        ),
        (
            "withoutHeaders exact absent",
            "[{withoutHeaders: {x-env: {exact: prod}}}]",
            get("/"),
            true,
        ),
        (
            "withoutHeaders regex matching empty, absent",
            "[{withoutHeaders: {x-env: {regex: '.*'}}}]",
            get("/"),
            false,
        ),
        (
            "queryParams exact",
            "[{queryParams: {v: {exact: '2'}}}]",
            get("/get?a=1&v=2"),
            true,
        ),
        (
            "queryParams exact miss",
            "[{queryParams: {v: {exact: '2'}}}]",
            get("/get?v=3"),
            false,
        ),
        (
            "queryParams prefix",
            "[{queryParams: {v: {prefix: beta}}}]",
            get("/get?v=beta-1"),
            true,
        ),
        (
            "queryParams regex",
            "[{queryParams: {id: {regex: '[0-9]+'}}}]",
            get("/get?id=42"),
            true,
        ),
        (
            "queryParams regex anchored",
            "[{queryParams: {id: {regex: '[0-9]+'}}}]",
            get("/get?id=42a"),
            false,
        ),
        (
            "queryParams present",
            "[{queryParams: {debug: {}}}]",
            get("/get?debug"),
            true,
        ),
        (
            "queryParams absent",
            "[{queryParams: {debug: {}}}]",
            get("/get?x=1"),
            false,
        ),
        (
            "sourceNamespace",
            "[{sourceNamespace: bookinfo}]",
            get("/"),
            true,
        ),
        (
            "sourceNamespace other",
            "[{sourceNamespace: default}]",
            get("/"),
            false,
        ),
        (
            "sourceNamespace plaintext",
            "[{sourceNamespace: bookinfo}]",
            get("/").source_ns(None),
            false,
        ),
        (
            "sourceLabels ignored",
            "[{sourceLabels: {app: x}}]",
            get("/"),
            true,
        ),
        (
            "fields AND",
            "[{uri: {prefix: /get}, method: {exact: POST}}]",
            get("/get"),
            false,
        ),
        (
            "entries OR",
            "[{uri: {prefix: /x}}, {method: {exact: GET}}]",
            get("/get"),
            true,
        ),
        ("empty entry matches all", "[{}]", get("/anything"), true),
    ];
    for (name, matches, req, hit) in cases {
        let table = one_route(matches);
        let want = if hit { "hit" } else { "<404>" };
        assert_eq!(
            routed(&table, "httpbin.org", &req),
            want,
            "case {name:?}: {matches}"
        );
    }
}

#[test]
fn first_match_wins() {
    let table = RouteTable::new(vec![vs(
        "istio-egress",
        "v",
        "hosts: [httpbin.org]\nhttp:\n\
         - {name: post, match: [{method: {exact: POST}}], route: [{destination: {host: httpbin.org}}]}\n\
         - {name: status, match: [{uri: {prefix: /status}}], route: [{destination: {host: httpbin.org}}]}\n\
         - {name: all, route: [{destination: {host: httpbin.org}}]}\n\
         - {name: never, route: [{destination: {host: httpbin.org}}]}",
    )]);
    let cases = [
        (Req::get("/status/1").method("POST"), "post"),
        (Req::get("/status/1"), "status"),
        (Req::get("/get"), "all"),
    ];
    for (req, want) in cases {
        assert_eq!(routed(&table, "httpbin.org", &req), want);
    }
}

#[test]
fn host_lookup_and_merging() {
    let route = |name: &str, prefix: &str| {
        format!("- {{name: {name}, match: [{{uri: {{prefix: {prefix}}}}}], route: [{{destination: {{host: x.example.com}}}}]}}")
    };
    let exact = vs(
        "ns",
        "exact",
        &format!("hosts: [api.example.com]\nhttp:\n{}", route("exact", "/a")),
    );
    let wild = vs(
        "ns",
        "wild",
        &format!("hosts: ['*.example.com']\nhttp:\n{}", route("wild", "/")),
    );
    let deeper = vs(
        "ns",
        "deeper",
        &format!(
            "hosts: ['*.eu.example.com']\nhttp:\n{}",
            route("deeper", "/")
        ),
    );
    let second = vs(
        "ns",
        "second",
        &format!("hosts: [api.example.com]\nhttp:\n{}", route("second", "/b")),
    );
    let gateway_only = vs(
        "ns",
        "gw",
        &format!(
            "hosts: [gw.other.org]\ngateways: [istio-system/ingress]\nhttp:\n{}",
            route("gw", "/")
        ),
    );
    let short = vs(
        "shop",
        "short",
        &format!("hosts: [reviews]\nhttp:\n{}", route("short", "/")),
    );
    let table = RouteTable::new(vec![exact, wild, deeper, second, gateway_only, short]);
    let cases = [
        ("api.example.com", "/a", "exact"),
        // merged in order: the second VirtualService's routes follow the first's
        ("api.example.com", "/b", "second"),
        // the exact host shadows wildcards: no fall-through to `*.example.com`
        ("api.example.com", "/c", "<404>"),
        ("API.Example.com:80", "/a", "exact"),
        ("www.example.com", "/", "wild"),
        ("a.b.example.com", "/", "wild"),
        ("x.eu.example.com", "/", "deeper"),
        ("example.com", "/", "<none>"),
        ("httpbin.org", "/", "<none>"),
        ("gw.other.org", "/", "<none>"),
        ("reviews.shop.svc.cluster.local", "/", "short"),
    ];
    for (host, path, want) in cases {
        let req = Req::get(path);
        assert_eq!(routed(&table, host, &req), want, "{host}{path}");
    }
    assert_eq!(table.warnings().len(), 1);
    assert!(table.warnings()[0].contains("ns/gw"));
}

#[test]
fn l4_routes() {
    use crate::route::L4View;
    let table = RouteTable::new(vec![vs(
        "ns",
        "l4",
        "hosts: ['*.example.com']\n\
         tls:\n- match: [{sniHosts: [api.example.com], port: 443}]\n  route: [{destination: {host: api.example.com, port: {number: 443}}}]\n\
         - match: [{sniHosts: ['*.example.com']}]\n  route: [{destination: {host: other.example.com}}]\n\
         tcp:\n- match: [{port: 5432, destinationSubnets: [240.240.0.0/16]}]\n  route: [{destination: {host: db.example.com}}]",
    )]);
    let conn = |sni: Option<&'static str>, port| L4View {
        sni,
        destination: "240.240.0.9".parse().unwrap(),
        port,
        source_namespace: None,
    };
    let host =
        |r: Option<&crate::route::CompiledL4Route>| r.map(|r| r.destinations[0].host.clone());
    assert_eq!(
        host(table.route_tls("a.example.com", &conn(Some("api.example.com"), 443))),
        Some("api.example.com".into())
    );
    assert_eq!(
        host(table.route_tls("a.example.com", &conn(Some("API.example.com"), 8443))),
        Some("other.example.com".into())
    );
    assert_eq!(
        host(table.route_tls("a.example.com", &conn(None, 443))),
        None
    );
    assert_eq!(
        host(table.route_tcp("db.example.com", &conn(None, 5432))),
        Some("db.example.com".into())
    );
    assert_eq!(
        host(table.route_tcp("db.example.com", &conn(None, 5433))),
        None
    );
}

//! Header operations, rewrites, weights, timeouts, retries and faults.

use std::time::Duration;

use http::{Request, Response, StatusCode};

use super::{vs, Req};
use crate::route::{
    apply_request, apply_response, fault_decision, pick_destination, FaultDecision, MatchedRoute,
    RedirectPath, RetryPolicy, RouteAction, RouteResult, RouteTable,
};

/// Routes `req` through a one-VirtualService table and applies the request side with
/// the destination picked by `rand`; returns (method, uri, headers as `name: value` lines).
fn forward(spec: &str, req: &Req, rand: u32) -> (String, Vec<String>) {
    let table = RouteTable::new(vec![vs("istio-egress", "v", spec)]);
    let RouteResult::Matched(m) = table.route_http("httpbin.org", &req.view()) else {
        panic!("no route for {}", req.path_and_query);
    };
    let mut builder = Request::builder()
        .method(req.method)
        .uri(req.path_and_query);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let (mut parts, ()) = builder
        .header("host", req.authority)
        .body(())
        .unwrap()
        .into_parts();
    let dest = pick_destination(m.route, rand);
    apply_request(&m, dest, &mut parts).unwrap();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    (parts.uri.to_string(), headers)
}

fn route_of(spec: &str) -> std::sync::Arc<crate::route::CompiledHttpRoute> {
    vs("istio-egress", "v", spec).http_routes()[0].clone()
}

#[test]
fn header_operations() {
    let base = Req::get("/get")
        .header("x-old", "1")
        .header("x-keep", "k")
        .header("x-multi", "a");
    // (case, route headers, destination headers, expected headers besides host, in order)
    let cases: Vec<(&str, &str, &str, Vec<&str>)> = vec![
        (
            "add appends",
            "{request: {add: {x-multi: b}}}",
            "{}",
            vec!["x-old: 1", "x-keep: k", "x-multi: a", "x-multi: b"],
        ),
        (
            "set overwrites",
            "{request: {set: {x-multi: b}}}",
            "{}",
            vec!["x-old: 1", "x-keep: k", "x-multi: b"],
        ),
        (
            "remove",
            "{request: {remove: [x-old]}}",
            "{}",
            vec!["x-keep: k", "x-multi: a"],
        ),
        (
            "remove then set then add",
            "{request: {remove: [x-multi], add: {x-multi: added}, set: {x-multi: set}}}",
            "{}",
            vec!["x-old: 1", "x-keep: k", "x-multi: set", "x-multi: added"],
        ),
        (
            "remove host is ignored",
            "{request: {remove: [host, ':path']}}",
            "{}",
            vec!["x-old: 1", "x-keep: k", "x-multi: a"],
        ),
        (
            "destination-level add",
            "{}",
            "{request: {add: {x-dest: d}}}",
            vec!["x-old: 1", "x-keep: k", "x-multi: a", "x-dest: d"],
        ),
        (
            "single destination: destination set applies after route set",
            "{request: {set: {x-v: route}}}",
            "{request: {set: {x-v: dest}}}",
            vec!["x-old: 1", "x-keep: k", "x-multi: a", "x-v: dest"],
        ),
        (
            "single destination: removes of both levels run before adds",
            "{request: {add: {x-old: r}}}",
            "{request: {remove: [x-old]}}",
            vec!["x-keep: k", "x-multi: a", "x-old: r"],
        ),
    ];
    for (name, route_headers, dest_headers, want) in cases {
        let spec = format!(
            "hosts: [httpbin.org]\nhttp:\n- headers: {route_headers}\n  route:\n  - destination: {{host: httpbin.org}}\n    headers: {dest_headers}"
        );
        let (_, mut headers) = forward(&spec, &base, 0);
        headers.retain(|h| !h.starts_with("host:"));
        assert_eq!(headers, want, "case {name:?}");
    }
}

#[test]
fn multiple_destinations_route_level_runs_last() {
    let spec = concat!(
        "hosts: [httpbin.org]\nhttp:\n- headers: {request: {set: {x-v: route}, add: {x-r: r}}}\n  route:\n",
        "  - {destination: {host: httpbin.org}, weight: 50, headers: {request: {set: {x-v: a}, add: {x-d: a}}}}\n",
        "  - {destination: {host: httpbin.org, subset: b}, weight: 50, headers: {request: {set: {x-v: b}}}}",
    );
    let (_, headers) = forward(spec, &Req::get("/"), 0);
    assert!(headers.contains(&"x-v: route".to_string()), "{headers:?}");
    assert!(headers.contains(&"x-d: a".to_string()), "{headers:?}");
    assert!(headers.contains(&"x-r: r".to_string()), "{headers:?}");
}

#[test]
fn rewrites() {
    // (case, match, rewrite, request path, expected uri)
    let cases = [
        (
            "prefix rewrite replaces the matched prefix",
            "[{uri: {prefix: /old}}]",
            "{uri: /new}",
            "/old/x?q=1",
            "/new/x?q=1",
        ),
        (
            "prefix to root",
            "[{uri: {prefix: /api/}}]",
            "{uri: /}",
            "/api/users",
            "/users",
        ),
        (
            "exact match rewrites the whole path",
            "[{uri: {exact: /get}}]",
            "{uri: /anything}",
            "/get?a=b",
            "/anything?a=b",
        ),
        (
            "regex match rewrites the whole path",
            "[{uri: {regex: '/s/[0-9]+'}}]",
            "{uri: /status/200}",
            "/s/1",
            "/status/200",
        ),
        (
            "no uri match replaces the leading /",
            "[{method: {exact: GET}}]",
            "{uri: /v2/}",
            "/get",
            "/v2/get",
        ),
        (
            "ignoreUriCase prefix keeps the rest",
            "[{uri: {prefix: /OLD}, ignoreUriCase: true}]",
            "{uri: /new}",
            "/old/Path",
            "/new/Path",
        ),
        (
            "regex rewrite with groups",
            "[{uri: {prefix: /}}]",
            "{uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}}",
            "/service/foo/v1/api?x=1",
            "/v1/api/instance/foo?x=1",
        ),
        (
            "regex rewrite replaces all",
            "[{uri: {prefix: /}}]",
            "{uriRegexRewrite: {match: a, rewrite: b}}",
            "/aaa",
            "/bbb",
        ),
    ];
    for (name, matches, rewrite, path, want) in cases {
        let spec = format!(
            "hosts: [httpbin.org]\nhttp:\n- match: {matches}\n  rewrite: {rewrite}\n  route: [{{destination: {{host: httpbin.org}}}}]"
        );
        let (uri, _) = forward(&spec, &Req::get(path), 0);
        assert_eq!(uri, want, "case {name:?}");
    }
}

#[test]
fn authority_rewrites() {
    let host_of = |spec: &str| {
        let (_, headers) = forward(spec, &Req::get("/"), 0);
        headers
            .into_iter()
            .filter(|h| h.starts_with("host: "))
            .collect::<Vec<_>>()
    };
    let cases = [
        ("rewrite.authority", "- rewrite: {authority: new.example.com}\n  route: [{destination: {host: httpbin.org}}]", "host: new.example.com"),
        ("headers set host", "- headers: {request: {set: {host: h.example.com}}}\n  route: [{destination: {host: httpbin.org}}]", "host: h.example.com"),
        ("destination :authority", "- route: [{destination: {host: httpbin.org}, headers: {request: {set: {':authority': d.example.com}}}}]", "host: d.example.com"),
        ("route beats destination", "- rewrite: {authority: r.example.com}\n  route: [{destination: {host: httpbin.org}, headers: {request: {add: {host: d.example.com}}}}]", "host: r.example.com"),
        ("none", "- route: [{destination: {host: httpbin.org}}]", "host: httpbin.org"),
    ];
    for (name, route, want) in cases {
        assert_eq!(
            host_of(&format!("hosts: [httpbin.org]\nhttp:\n{route}")),
            vec![want],
            "case {name:?}"
        );
    }
    // An absolute-form / HTTP/2 URI carries the authority too.
    let table = RouteTable::new(vec![vs(
        "ns",
        "v",
        "hosts: [httpbin.org]\nhttp:\n- rewrite: {authority: new.example.com}\n  route: [{destination: {host: httpbin.org}}]",
    )]);
    let req = Req::get("/get");
    let RouteResult::Matched(m) = table.route_http("httpbin.org", &req.view()) else {
        panic!()
    };
    let (mut parts, ()) = Request::get("http://httpbin.org/get")
        .body(())
        .unwrap()
        .into_parts();
    apply_request(&m, pick_destination(m.route, 0), &mut parts).unwrap();
    assert_eq!(parts.uri.to_string(), "http://new.example.com/get");
}

#[test]
fn response_headers() {
    let route = route_of(
        "hosts: [httpbin.org]\nhttp:\n- headers: {response: {set: {x-served-by: egret}, remove: [server]}}\n  route:\n  - destination: {host: httpbin.org}\n    headers: {response: {add: {x-dest: d}}}",
    );
    let (mut parts, ()) = Response::builder()
        .header("server", "gunicorn")
        .body(())
        .unwrap()
        .into_parts();
    apply_response(&route, pick_destination(&route, 0), &mut parts);
    assert_eq!(parts.headers.get("x-served-by").unwrap(), "egret");
    assert_eq!(parts.headers.get("x-dest").unwrap(), "d");
    assert!(parts.headers.get("server").is_none());
}

#[test]
fn weights() {
    let route = route_of(
        "hosts: [httpbin.org]\nhttp:\n- route:\n  - {destination: {host: a.example.com}, weight: 25}\n  - {destination: {host: b.example.com}, weight: 0}\n  - {destination: {host: c.example.com}, weight: 75}",
    );
    let pick = |r| {
        pick_destination(&route, r)
            .unwrap()
            .host
            .as_str()
            .to_string()
    };
    let cases = [
        (0, "a.example.com"),
        (24, "a.example.com"),
        (25, "c.example.com"),
        (99, "c.example.com"),
        (100, "a.example.com"),
        (125, "c.example.com"),
    ];
    for (rand, want) in cases {
        assert_eq!(pick(rand), want, "rand {rand}");
    }
    let counts = (0..1000u32)
        .filter(|r| pick(r.wrapping_mul(2654435761)) == "a.example.com")
        .count();
    assert!((200..300).contains(&counts), "{counts}");
    // Weights need not sum to 100; a single destination ignores its weight.
    let single = route_of(
        "hosts: [h.example.com]\nhttp:\n- route: [{destination: {host: a.example.com}, weight: 7}]",
    );
    assert_eq!(
        pick_destination(&single, 12345).unwrap().host,
        "a.example.com"
    );
    let redirect = route_of("hosts: [h.example.com]\nhttp:\n- redirect: {uri: /x}");
    assert!(pick_destination(&redirect, 0).is_none());
}

#[test]
fn timeouts_and_retries() {
    let route = |extra: &str| {
        route_of(&format!("hosts: [h.example.com]\nhttp:\n- route: [{{destination: {{host: h.example.com}}}}]\n{extra}"))
    };
    let default = route("");
    assert_eq!(default.timeout, None);
    assert_eq!(
        default.retries.as_deref(),
        Some(&RetryPolicy::istio_default())
    );
    let d = RetryPolicy::istio_default();
    assert_eq!(d.attempts, 2);
    assert_eq!(
        d.retry_on,
        [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes"
        ]
    );

    assert_eq!(
        route("  timeout: 1.5s").timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(route("  retries: {attempts: 0}").retries, None);
    let custom =
        route("  retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 'gateway-error,503'}")
            .retries
            .clone()
            .unwrap();
    assert_eq!(custom.attempts, 3);
    assert_eq!(custom.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(custom.retry_on, ["gateway-error", "retriable-status-codes"]);
    assert_eq!(custom.retriable_status_codes, [503]);
    let attempts_only = route("  retries: {attempts: 5}").retries.clone().unwrap();
    assert_eq!(
        attempts_only.retry_on,
        RetryPolicy::istio_default().retry_on
    );
}

#[test]
fn faults() {
    let route = route_of(
        "hosts: [h.example.com]\nhttp:\n- route: [{destination: {host: h.example.com}}]\n  fault:\n    delay: {fixedDelay: 2s, percentage: {value: 10}}\n    abort: {httpStatus: 503, percentage: {value: 50.5}}",
    );
    let cases = [
        (
            (0.0, 0.0),
            FaultDecision {
                delay: Some(Duration::from_secs(2)),
                abort: Some(StatusCode::SERVICE_UNAVAILABLE),
            },
        ),
        (
            (0.099, 0.504),
            FaultDecision {
                delay: Some(Duration::from_secs(2)),
                abort: Some(StatusCode::SERVICE_UNAVAILABLE),
            },
        ),
        (
            (0.1, 0.505),
            FaultDecision {
                delay: None,
                abort: None,
            },
        ),
        (
            (0.99, 0.2),
            FaultDecision {
                delay: None,
                abort: Some(StatusCode::SERVICE_UNAVAILABLE),
            },
        ),
    ];
    for ((d, a), want) in cases {
        assert_eq!(fault_decision(&route, d, a), want, "rand ({d}, {a})");
    }
    // Percentage unset: no request is faulted (Istio's documented default).
    let unset = route_of("hosts: [h.example.com]\nhttp:\n- route: [{destination: {host: h.example.com}}]\n  fault: {abort: {httpStatus: 418}}");
    assert_eq!(fault_decision(&unset, 0.0, 0.0), FaultDecision::default());
    let legacy = route_of("hosts: [h.example.com]\nhttp:\n- route: [{destination: {host: h.example.com}}]\n  fault: {delay: {fixedDelay: 1s, percent: 100}}");
    assert_eq!(
        fault_decision(&legacy, 0.999, 0.0).delay,
        Some(Duration::from_secs(1))
    );
}

#[test]
fn redirect_and_direct_response() {
    let redirect = route_of("hosts: [h.example.com]\nhttp:\n- redirect: {uri: /new, authority: n.example.com, redirectCode: 302}");
    let RouteAction::Redirect(r) = &redirect.action else {
        panic!()
    };
    assert_eq!(
        (&r.path, r.authority.as_deref(), r.status),
        (
            &Some(RedirectPath::Full("/new".into())),
            Some("n.example.com"),
            StatusCode::FOUND
        )
    );
    let direct = route_of(
        "hosts: [h.example.com]\nhttp:\n- directResponse: {status: 418, body: {string: teapot}}",
    );
    let RouteAction::DirectResponse { status, body } = &direct.action else {
        panic!()
    };
    assert_eq!(
        (*status, body.as_deref()),
        (StatusCode::IM_A_TEAPOT, Some("teapot"))
    );
}

#[test]
fn matched_prefix_is_reported() {
    let table = RouteTable::new(vec![vs(
        "ns",
        "v",
        "hosts: [h.example.com]\nhttp:\n- match: [{uri: {prefix: /abc}}]\n  route: [{destination: {host: h.example.com}}]",
    )]);
    let req = Req::get("/abcdef");
    let RouteResult::Matched(MatchedRoute {
        matched_prefix_len, ..
    }) = table.route_http("h.example.com", &req.view())
    else {
        panic!()
    };
    assert_eq!(matched_prefix_len, 4);
}

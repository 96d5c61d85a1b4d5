//! Invalid VirtualServices are refused with a message naming them and the field.

use super::try_vs;
use crate::route::VirtualServiceSpec;

#[test]
fn invalid_virtual_services_name_the_field() {
    let dest = "route: [{destination: {host: h.example.com}}]";
    let cases: Vec<(String, &str)> = vec![
        ("hosts: []".into(), "VirtualService ns/v: spec.hosts: at least one host is required"),
        ("hosts: ['']".into(), "spec.hosts[0]: host must not be empty"),
        (format!("hosts: [h]\nhttp:\n- match: [{{uri: {{regex: '(unclosed'}}}}]\n  {dest}"), "VirtualService ns/v: spec.http[0].match[0].uri.regex: invalid regex \"(unclosed\""),
        (format!("hosts: [h]\nhttp:\n- match: [{{headers: {{x: {{regex: '[a-'}}}}}}]\n  {dest}"), "spec.http[0].match[0].headers[x].regex: invalid regex"),
        (format!("hosts: [h]\nhttp:\n- match: [{{queryParams: {{q: {{regex: '*a'}}}}}}]\n  {dest}"), "spec.http[0].match[0].queryParams[q].regex: invalid regex"),
        (format!("hosts: [h]\nhttp:\n- match: [{{uri: {{exact: /a, prefix: /b}}}}]\n  {dest}"), "spec.http[0].match[0].uri: only one of exact, prefix or regex"),
        (format!("hosts: [h]\nhttp:\n- match: [{{port: 70000}}]\n  {dest}"), "spec.http[0].match[0].port: port number 70000"),
        (format!("hosts: [h]\nhttp:\n- match: [{{headers: {{'bad header': {{exact: x}}}}}}]\n  {dest}"), "invalid header name \"bad header\""),
        (format!("hosts: [h]\nhttp:\n- match: [{{headers: {{':protocol': {{exact: x}}}}}}]\n  {dest}"), "invalid header name \":protocol\""),
        ("hosts: [h]\nhttp:\n- redirect: {uri: /a, prefixRewrite: /b}".into(), "spec.http[0].redirect: only one of uri or prefixRewrite may be set"),
        ("hosts: [h]\nhttp:\n- redirect: {port: 8080, derivePort: FROM_REQUEST_PORT}".into(), "spec.http[0].redirect: only one of port or derivePort may be set"),
        ("hosts: [h]\nhttp:\n- redirect: {derivePort: FROM_NOWHERE}".into(), "spec.http[0].redirect.derivePort: unknown value \"FROM_NOWHERE\""),
        ("hosts: [h]\nhttp:\n- name: r\n".into(), "spec.http[0]: HTTP route, redirect or directResponse is required"),
        (format!("hosts: [h]\nhttp:\n- redirect: {{uri: /x}}\n  {dest}"), "spec.http[0]: HTTP route cannot contain both route and redirect"),
        ("hosts: [h]\nhttp:\n- route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 0}]".into(), "spec.http[0].route: total destination weight = 0"),
        ("hosts: [h]\nhttp:\n- route: [{destination: {host: a}, weight: -1}]".into(), "spec.http[0].route[0].weight: weight -1 < 0"),
        ("hosts: [h]\nhttp:\n- route: [{destination: {host: '*'}}]".into(), "spec.http[0].route[0].destination.host: invalid destination host"),
        (format!("hosts: [h]\nhttp:\n- timeout: 10\n  {dest}"), "spec.http[0].timeout: invalid duration \"10\""),
        (format!("hosts: [h]\nhttp:\n- timeout: 0s\n  {dest}"), "spec.http[0].timeout: duration \"0s\" must be at least 1ms"),
        (format!("hosts: [h]\nhttp:\n- retries: {{attempts: 2, perTryTimeout: 1x}}\n  {dest}"), "spec.http[0].retries.perTryTimeout: invalid duration"),
        (format!("hosts: [h]\nhttp:\n- retries: {{attempts: 0, retryOn: 5xx}}\n  {dest}"), "attempts are set to 0 (disabled)"),
        (format!("hosts: [h]\nhttp:\n- retries: {{attempts: 1, retryOn: 'sometimes'}}\n  {dest}"), "spec.http[0].retries.retryOn: \"sometimes\" is not a valid retryOn policy"),
        (format!("hosts: [h]\nhttp:\n- fault: {{}}\n  {dest}"), "spec.http[0].fault: HTTP fault injection must have an abort and/or a delay"),
        (format!("hosts: [h]\nhttp:\n- fault: {{abort: {{httpStatus: 700}}}}\n  {dest}"), "spec.http[0].fault.abort.httpStatus: HTTP status 700"),
        (format!("hosts: [h]\nhttp:\n- fault: {{abort: {{httpStatus: 503, percentage: {{value: 101}}}}}}\n  {dest}"), "percentage 101 is neither 0.0, nor in range"),
        (format!("hosts: [h]\nhttp:\n- fault: {{abort: {{grpcStatus: UNAVAILABLE}}}}\n  {dest}"), "gRPC abort faults are not supported"),
        (format!("hosts: [h]\nhttp:\n- rewrite: {{uri: /a, uriRegexRewrite: {{match: a, rewrite: b}}}}\n  {dest}"), "rewrite may only contain one of uri or uriRegexRewrite"),
        (format!("hosts: [h]\nhttp:\n- rewrite: {{uriRegexRewrite: {{match: '(', rewrite: b}}}}\n  {dest}"), "spec.http[0].rewrite.uriRegexRewrite.match: invalid regex"),
        (format!("hosts: [h]\nhttp:\n- rewrite: {{authority: a}}\n  headers: {{request: {{set: {{host: b}}}}}}\n  {dest}"), "authority header cannot be set multiple times"),
        (format!("hosts: [h]\nhttp:\n- headers: {{request: {{set: {{x: \"bad\\nvalue\"}}}}}}\n  {dest}"), "spec.http[0].headers.request.set[x]: invalid header value"),
        (format!("hosts: [h]\nhttp:\n- mirror: {{host: m}}\n  {dest}"), "spec.http[0].mirror: not supported by egret yet"),
        ("hosts: [h]\ntls:\n- route: [{destination: {host: a}}]".into(), "spec.tls[0].match: TLS routes need at least one match"),
        ("hosts: [h]\ntcp:\n- match: [{destinationSubnets: [1.2.3.4/40]}]\n  route: [{destination: {host: a}}]".into(), "spec.tcp[0].match[0].destinationSubnets[0]: bad IP address or CIDR"),
    ];
    for (yaml, want) in cases {
        let err = try_vs("ns", "v", &yaml).expect_err(&yaml).to_string();
        assert!(
            err.contains(want),
            "spec {yaml:?}\n got: {err}\nwant: {want}"
        );
        assert!(err.starts_with("VirtualService ns/v: "), "{err}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    for yaml in [
        "hosts: [h]\nhttp:\n- route: [{destination: {host: h}}]\n  timeouts: 1s",
        "hosts: [h]\nhttp:\n- match: [{url: {exact: /}}]\n  route: [{destination: {host: h}}]",
        "host: [h]",
    ] {
        assert!(
            serde_yaml::from_str::<VirtualServiceSpec>(yaml).is_err(),
            "{yaml}"
        );
    }
}

//! What changes on a message as it crosses the waypoint: hop-by-hop headers
//! stay behind (RFC 9110 §7.6.1), the request goes out in origin form with
//! its `Host` kept, and both legs speak HTTP/1.1.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, response, uri, Uri, Version};

use crate::proxy::context::UpstreamTarget;

/// Headers that describe one hop, never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    // The waypoint answers `100-continue` itself (hyper does, when the
    // body is first read), as Envoy does.
    header::EXPECT,
];

/// Prepares a workload's request head for the upstream.
pub fn upstream_request(head: &mut request::Parts, target: &UpstreamTarget) {
    strip_hop_by_hop(&mut head.headers);
    // `te: trailers` is end-to-end; other `te` values are hop-by-hop.
    if head
        .headers
        .get(header::TE)
        .is_some_and(|v| v != "trailers")
    {
        head.headers.remove(header::TE);
    }
    if !head.headers.contains_key(header::HOST) {
        let host = match head.uri.authority() {
            Some(authority) => authority.as_str().to_string(),
            None if target.port.number == 80 => target.service.host.to_string(),
            None => format!("{}:{}", target.service.host, target.port.number),
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            head.headers.insert(header::HOST, value);
        }
    }
    head.uri = origin_form(&head.uri);
    head.version = Version::HTTP_11;
}

/// Prepares an upstream's response head for the workload.
pub fn downstream_response(head: &mut response::Parts) {
    strip_hop_by_hop(&mut head.headers);
    head.version = Version::HTTP_11;
}

/// Removes the fixed hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    // One pass over the (few) headers present instead of a hashed removal
    // per fixed name: most messages carry none of them.
    named.extend(
        headers
            .keys()
            .filter(|name| HOP_BY_HOP.contains(name))
            .cloned(),
    );
    for name in &named {
        headers.remove(name);
    }
}

/// `/path?query` of any request target (absolute form included).
fn origin_form(uri: &Uri) -> Uri {
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| uri::PathAndQuery::from_static("/"));
    Uri::from(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::snapshot::{Protocol, Resolution, Service, ServicePort, WaypointBinding};

    fn target(number: u16) -> UpstreamTarget {
        let port = ServicePort {
            number,
            name: "http".into(),
            protocol: Protocol::Http,
            target_port: None,
        };
        UpstreamTarget {
            service: Arc::new(Service {
                namespace: "ns".into(),
                name: "se".into(),
                host: "httpbin.org".into(),
                vips: vec![],
                ports: vec![port.clone()],
                resolution: Resolution::Dns,
                endpoints: vec![],
                waypoint: WaypointBinding::None,
            }),
            port,
        }
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let (mut head, ()) = http::Request::get("/get?x=1")
            .header("host", "httpbin.org")
            .header("connection", "keep-alive, x-secret")
            .header("keep-alive", "timeout=5")
            .header("x-secret", "1")
            .header("transfer-encoding", "chunked")
            .header("te", "gzip")
            .header("x-kept", "yes")
            .body(())
            .unwrap()
            .into_parts();
        upstream_request(&mut head, &target(80));
        let names: Vec<_> = head.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["host", "x-kept"]);
        assert_eq!(head.uri, "/get?x=1");
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_host() {
        let (mut head, ()) = http::Request::get("http://httpbin.org:8080/anything")
            .header("te", "trailers")
            .body(())
            .unwrap()
            .into_parts();
        upstream_request(&mut head, &target(80));
        assert_eq!(head.uri, "/anything");
        assert_eq!(head.headers["host"], "httpbin.org:8080");
        assert_eq!(head.headers["te"], "trailers");
    }

    #[test]
    fn missing_host_is_the_service_host() {
        let (mut head, ()) = http::Request::get("/")
            .version(Version::HTTP_10)
            .body(())
            .unwrap()
            .into_parts();
        upstream_request(&mut head, &target(8000));
        assert_eq!(head.headers["host"], "httpbin.org:8000");
        assert_eq!(head.version, Version::HTTP_11);
    }
}

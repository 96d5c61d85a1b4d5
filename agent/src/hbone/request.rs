//! The CONNECT request on the wire, both ways: what a client sends (the
//! target as `:authority`, `forwarded`, `baggage`, `traceparent`, as
//! ztunnel's outbound builds them) and what a server accepts.

use std::net::SocketAddr;

use http::{header::FORWARDED, HeaderMap, HeaderValue, Method, Request, StatusCode};

use crate::identity::WorkloadInfo;

/// W3C baggage with the source workload's facts (ztunnel reads these keys).
pub const BAGGAGE_HEADER: &str = "baggage";
/// W3C trace context of the tunnel.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Why a CONNECT request is refused before any upstream is tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// Anything but CONNECT.
    #[error("method {0} is not CONNECT")]
    Method(String),
    /// `:authority` is not `ip:port`.
    #[error("authority `{0}` is not an ip:port")]
    Authority(String),
}

impl BadRequest {
    /// ztunnel answers both with 400.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// The CONNECT a client sends to reach `target` (a service VIP and port) for
/// the workload at `src`.
pub fn build(
    target: SocketAddr,
    src: SocketAddr,
    service_host: Option<&str>,
    workload: &WorkloadInfo,
) -> Request<()> {
    let forwarded = match service_host {
        Some(host) => format!("for=\"{src}\";host={host}"),
        None => format!("for=\"{src}\""),
    };
    let baggage = format!(
        "k8s.namespace.name={},k8s.pod.name={},service.name={}",
        workload.namespace, workload.name, workload.service_account
    );
    let mut builder = Request::builder()
        .method(Method::CONNECT)
        .uri(target.to_string())
        .version(http::Version::HTTP_2)
        .header(FORWARDED, forwarded)
        .header(TRACEPARENT_HEADER, traceparent());
    if let Ok(value) = HeaderValue::from_str(&baggage) {
        builder = builder.header(BAGGAGE_HEADER, value);
    }
    builder
        .body(())
        .expect("a CONNECT to a socket address is a valid request")
}

/// `00-<trace id>-<span id>-01`, fresh for every tunnel.
fn traceparent() -> String {
    let trace: u128 = rand::random::<u128>() | 1;
    let span: u64 = rand::random::<u64>() | 1;
    format!("00-{trace:032x}-{span:016x}-01")
}

/// The target of a CONNECT request, or why it is refused.
pub fn target<B>(request: &Request<B>) -> Result<SocketAddr, BadRequest> {
    if request.method() != Method::CONNECT {
        return Err(BadRequest::Method(request.method().to_string()));
    }
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    authority
        .parse::<SocketAddr>()
        .map_err(|_| BadRequest::Authority(authority))
}

/// The original client address from `forwarded: for="ip:port"`, if present.
pub fn forwarded_for(headers: &HeaderMap) -> Option<SocketAddr> {
    let value = headers.get(FORWARDED)?.to_str().ok()?;
    value.split([';', ',']).find_map(|part| {
        let v = part.trim().strip_prefix("for=")?;
        v.trim_matches('"').parse().ok()
    })
}

/// Baggage keys that name the client workload: ztunnel sends
/// `k8s.<workload type>.name` with the type istiod reports (deployment,
/// cronjob, pod or job) and reads any of them (istio/ztunnel
/// `src/baggage.rs`).
pub const WORKLOAD_NAME_KEYS: &[&str] = &[
    "k8s.deployment.name",
    "k8s.cronjob.name",
    "k8s.pod.name",
    "k8s.job.name",
];

/// The `baggage` entries, in order (every header line, comma-separated).
fn baggage_entries(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(BAGGAGE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| kv.trim().split_once('='))
}

/// The client workload's name from `baggage`: the value of any of
/// [`WORKLOAD_NAME_KEYS`]; as in ztunnel, the last one given wins and an
/// empty value clears it.
pub fn baggage_workload_name(headers: &HeaderMap) -> Option<&str> {
    baggage_entries(headers)
        .filter(|(k, _)| WORKLOAD_NAME_KEYS.contains(k))
        .last()
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> WorkloadInfo {
        WorkloadInfo {
            name: "curl-1".into(),
            namespace: "bookinfo".into(),
            service_account: "productpage".into(),
            ip: "10.238.0.2".parse().unwrap(),
            netns_cookie: 7,
        }
    }

    #[test]
    fn client_request_matches_ztunnel() {
        let req = build(
            "240.240.0.2:80".parse().unwrap(),
            "10.238.0.2:41000".parse().unwrap(),
            Some("httpbin.org"),
            &workload(),
        );
        assert_eq!(req.method(), Method::CONNECT);
        assert_eq!(req.uri().to_string(), "240.240.0.2:80");
        assert_eq!(
            req.headers()[FORWARDED],
            "for=\"10.238.0.2:41000\";host=httpbin.org"
        );
        assert_eq!(
            forwarded_for(req.headers()),
            Some("10.238.0.2:41000".parse().unwrap())
        );
        assert_eq!(baggage_workload_name(req.headers()), Some("curl-1"));
        let tp = req.headers()[TRACEPARENT_HEADER].to_str().unwrap();
        assert_eq!(tp.len(), 55, "{tp}");
        assert_eq!(target(&req), Ok("240.240.0.2:80".parse().unwrap()));
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(BAGGAGE_HEADER, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn workload_name_comes_from_any_k8s_workload_type() {
        // ztunnel's own header for a Deployment's pod.
        let ztunnel = headers(&["k8s.cluster.name=Kubernetes,k8s.namespace.name=bookinfo,k8s.deployment.name=productpage-v1,service.name=productpage,service.version=v1"]);
        assert_eq!(baggage_workload_name(&ztunnel), Some("productpage-v1"));
        for kind in ["cronjob", "pod", "job"] {
            let h = headers(&[&format!("k8s.namespace.name=ns,k8s.{kind}.name=w-{kind}")]);
            assert_eq!(
                baggage_workload_name(&h),
                Some(format!("w-{kind}").as_str())
            );
        }
        // One entry per header line, as ztunnel also accepts.
        let split = headers(&["k8s.namespace.name=ns", "k8s.job.name=nightly"]);
        assert_eq!(baggage_workload_name(&split), Some("nightly"));
        // Types ztunnel does not read, and empty values, name nobody.
        for h in [
            headers(&["k8s.statefulset.name=db"]),
            headers(&["k8s.deployment.name="]),
            HeaderMap::new(),
        ] {
            assert_eq!(baggage_workload_name(&h), None, "{h:?}");
        }
        // egret's own client header is read back.
        let req = build(
            "240.240.0.2:80".parse().unwrap(),
            "10.238.0.2:41000".parse().unwrap(),
            None,
            &workload(),
        );
        assert_eq!(baggage_workload_name(req.headers()), Some("curl-1"));
    }

    #[test]
    fn ipv6_forwarded_for_is_bracketed() {
        let req = build(
            "[2001:2::2]:80".parse().unwrap(),
            "[fd00::2]:41000".parse().unwrap(),
            None,
            &workload(),
        );
        assert_eq!(req.headers()[FORWARDED], "for=\"[fd00::2]:41000\"");
        assert_eq!(req.uri().to_string(), "[2001:2::2]:80");
    }

    #[test]
    fn only_connect_to_an_address_is_accepted() {
        let get = Request::get("http://240.240.0.2/").body(()).unwrap();
        assert_eq!(target(&get), Err(BadRequest::Method("GET".into())));
        let by_name = Request::builder()
            .method(Method::CONNECT)
            .uri("httpbin.org:80")
            .body(())
            .unwrap();
        assert_eq!(
            target(&by_name),
            Err(BadRequest::Authority("httpbin.org:80".into()))
        );
        assert_eq!(by_name.method(), Method::CONNECT);
        assert_eq!(BadRequest::Method("GET".into()).status(), 400);
    }
}

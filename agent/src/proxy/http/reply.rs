//! Replies the waypoint makes itself, worded as Envoy words them so
//! clients and scripts written against Istio see the same thing.

use std::borrow::Cow;

use http::{header, HeaderValue, Response, StatusCode};

use super::body::{self, ProxyBody};
use crate::proxy::flags::ResponseFlag;
use crate::proxy::outcome::Failure;

/// A response made by the waypoint instead of an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// Status code.
    pub status: StatusCode,
    /// `text/plain` body.
    pub body: Cow<'static, str>,
    /// Why the waypoint answered itself.
    pub flag: Option<ResponseFlag>,
}

impl LocalReply {
    /// The failure this reply answers, `why` in words, with the reply's flag.
    pub fn failure(&self, why: impl std::fmt::Display) -> Failure {
        match self.flag {
            Some(flag) => Failure::flagged(flag, why),
            None => Failure::unflagged(why),
        }
    }

    /// 503: no upstream address accepted the connection (`UF`).
    pub fn upstream_connect_failure() -> Self {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Cow::Borrowed(
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            ),
            flag: Some(ResponseFlag::UpstreamConnectionFailure),
        }
    }

    /// 503: the upstream connection closed before response headers (`UC`).
    pub fn upstream_reset() -> Self {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Cow::Borrowed(
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            ),
            flag: Some(ResponseFlag::UpstreamConnectionTermination),
        }
    }

    /// 503: nothing to connect to (`UH`).
    pub fn no_healthy_upstream() -> Self {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: Cow::Borrowed("no healthy upstream"),
            flag: Some(ResponseFlag::NoHealthyUpstream),
        }
    }

    /// 403 `RBAC: access denied`: an AuthorizationPolicy said no.
    pub fn rbac_denied() -> Self {
        LocalReply {
            status: StatusCode::FORBIDDEN,
            body: Cow::Borrowed(crate::authz::DENY_BODY),
            flag: Some(ResponseFlag::RbacDenied),
        }
    }

    /// 404: VirtualServices exist for the host but none of their routes matched (`NR`).
    pub fn no_route() -> Self {
        LocalReply {
            status: StatusCode::NOT_FOUND,
            body: Cow::Borrowed(crate::route::NO_ROUTE_BODY),
            flag: Some(ResponseFlag::NoRoute),
        }
    }

    /// 404 with no body (`NR`): the request names no host of the service it
    /// was sent to (no virtual host matches, as Envoy answers it).
    pub fn no_virtual_host() -> Self {
        LocalReply {
            status: StatusCode::NOT_FOUND,
            body: Cow::Borrowed(""),
            flag: Some(ResponseFlag::NoRoute),
        }
    }

    /// A VirtualService `fault.abort` (`FI`), worded as Envoy's fault filter.
    pub fn fault_abort(status: StatusCode) -> Self {
        LocalReply {
            status,
            body: Cow::Borrowed("fault filter abort"),
            flag: Some(ResponseFlag::FaultInjected),
        }
    }

    /// 504: the route's timeout passed (`UT`).
    pub fn upstream_timeout() -> Self {
        LocalReply {
            status: StatusCode::GATEWAY_TIMEOUT,
            body: Cow::Borrowed("upstream request timeout"),
            flag: Some(ResponseFlag::UpstreamRequestTimeout),
        }
    }

    /// 400 `Bad Request` (`DPE`): malformed HTTP, a request Istio's
    /// normalization rules refuse, several `Host` headers, or `Host` and
    /// `:authority` that disagree. Envoy's codec words it so.
    pub fn bad_request() -> Self {
        LocalReply {
            status: StatusCode::BAD_REQUEST,
            body: Cow::Borrowed("Bad Request"),
            flag: Some(ResponseFlag::DownstreamProtocolError),
        }
    }

    /// 431: the request headers are over the size or count limit (`DPE`).
    pub fn header_fields_too_large() -> Self {
        LocalReply {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            body: Cow::Borrowed("Request Header Fields Too Large"),
            flag: Some(ResponseFlag::DownstreamProtocolError),
        }
    }

    /// 501: a `Transfer-Encoding` other than `chunked` (`DPE`), as Envoy answers.
    pub fn not_implemented() -> Self {
        LocalReply {
            status: StatusCode::NOT_IMPLEMENTED,
            body: Cow::Borrowed("Not Implemented"),
            flag: Some(ResponseFlag::DownstreamProtocolError),
        }
    }

    /// 408: the request headers did not arrive in time (Envoy's
    /// `request_headers_timeout`, which sets no flag).
    pub fn request_header_timeout() -> Self {
        LocalReply {
            status: StatusCode::REQUEST_TIMEOUT,
            body: Cow::Borrowed("request header timeout"),
            flag: None,
        }
    }

    /// 408: no activity on the request for the stream idle timeout (`SI`).
    pub fn stream_idle_timeout() -> Self {
        LocalReply {
            status: StatusCode::REQUEST_TIMEOUT,
            body: Cow::Borrowed("stream timeout"),
            flag: Some(ResponseFlag::StreamIdleTimeout),
        }
    }

    /// A VirtualService `directResponse`.
    pub fn direct(status: StatusCode, body: String) -> Self {
        LocalReply {
            status,
            body: Cow::Owned(body),
            flag: None,
        }
    }

    /// The response: `content-type: text/plain` and an exact length.
    pub fn into_response(self) -> Response<ProxyBody> {
        let length = HeaderValue::from(self.body.len());
        let mut response = Response::new(body::full(self.body.into_owned()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, length);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn connect_failure_is_envoys_503() {
        let reply = LocalReply::upstream_connect_failure();
        assert_eq!(reply.flag, Some(ResponseFlag::UpstreamConnectionFailure));
        let response = reply.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["content-length"], "91");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        );
    }
}

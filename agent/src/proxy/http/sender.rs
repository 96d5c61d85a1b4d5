//! The client half of one upstream connection, in the HTTP version the
//! connection speaks: HTTP/1.1, or HTTP/2 when the upstream picked `h2` by
//! ALPN during TLS origination. An HTTP/2 connection carries many requests
//! at once, so it can be shared ([`Sender::share`]); an HTTP/1.1 one serves
//! one request at a time.

use std::net::SocketAddr;

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::ProxyBody;

/// The ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// A request sender on one upstream connection.
pub enum Sender {
    /// One request at a time.
    Http1(http1::SendRequest<ProxyBody>),
    /// Multiplexed; clones share the connection.
    Http2(http2::SendRequest<ProxyBody>),
}

impl Sender {
    /// Starts the client protocol on a connected stream (`http2` when ALPN
    /// chose `h2`); the connection task ends when either side closes it.
    pub async fn handshake<S>(stream: S, addr: SocketAddr, http2: bool) -> hyper::Result<Sender>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(stream);
        if http2 {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%addr, error = %e, "upstream HTTP/2 connection ended");
                }
            });
            Ok(Sender::Http2(sender))
        } else {
            let (sender, connection) = http1::Builder::new().handshake(io).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%addr, error = %e, "upstream connection ended");
                }
            });
            Ok(Sender::Http1(sender))
        }
    }

    /// `HTTP/1.1` or `HTTP/2`, for messages.
    pub fn version(&self) -> &'static str {
        match self {
            Sender::Http1(_) => "HTTP/1.1",
            Sender::Http2(_) => "HTTP/2",
        }
    }

    /// Another handle on the same connection, when it can carry requests
    /// concurrently (HTTP/2).
    pub fn share(&self) -> Option<Sender> {
        match self {
            Sender::Http1(_) => None,
            Sender::Http2(s) => Some(Sender::Http2(s.clone())),
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(s) => s.is_closed(),
            Sender::Http2(s) => s.is_closed(),
        }
    }

    /// Whether a request can go out right away.
    pub fn is_ready(&self) -> bool {
        match self {
            Sender::Http1(s) => s.is_ready(),
            Sender::Http2(s) => s.is_ready(),
        }
    }

    /// Waits until a request can go out (HTTP/1.1: the previous response
    /// is done); errs when the connection closed.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::Http1(s) => s.ready().await,
            Sender::Http2(s) => s.ready().await,
        }
    }

    /// Sends `request`; an error that happened before it was written hands
    /// it back. For HTTP/2 the request gets its `:scheme` and `:authority`
    /// (from `Host`).
    pub async fn try_send_request(
        &mut self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<ProxyBody>>> {
        match self {
            Sender::Http1(s) => s.try_send_request(request).await,
            Sender::Http2(s) => s.try_send_request(into_http2(request)).await,
        }
    }
}

/// An HTTP/1.1-shaped request (origin form, `Host`) as HTTP/2 wants it:
/// absolute `https` URI with the Host as authority, no `Host` header.
fn into_http2(mut request: Request<ProxyBody>) -> Request<ProxyBody> {
    let authority = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.parse::<Authority>().ok())
        .or_else(|| request.uri().authority().cloned());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTPS);
    parts.authority = authority;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    // Without an authority the URI cannot be absolute: keep it as it was.
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
        request.headers_mut().remove(HOST);
    }
    *request.version_mut() = Version::HTTP_2;
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_requests_carry_the_host_as_authority() {
        let request = Request::get("/get?x=1")
            .header(HOST, "api.test:8443")
            .header("x-keep", "1")
            .body(super::super::body::empty())
            .unwrap();
        let request = into_http2(request);
        assert_eq!(request.uri(), "https://api.test:8443/get?x=1");
        assert_eq!(request.version(), Version::HTTP_2);
        assert!(request.headers().get(HOST).is_none());
        assert_eq!(request.headers()["x-keep"], "1");
    }

    #[test]
    fn a_request_without_host_keeps_its_uri() {
        let request = Request::get("/").body(super::super::body::empty()).unwrap();
        let request = into_http2(request);
        assert_eq!(request.uri(), "/");
    }
}

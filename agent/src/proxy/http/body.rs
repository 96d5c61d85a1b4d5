//! Body types of the HTTP path: one boxed streaming body both ways, and the
//! response body that writes the request's access log line when it is done.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};

use crate::proxy::access_log::{self, RequestRecord};
use crate::proxy::context::ConnectionContext;
use crate::proxy::flags::{ResponseFlag, ResponseFlags};

/// A streaming body, from the workload or an upstream, or made locally.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// A body holding `bytes`, for local replies.
pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

/// A body of exactly `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What the request's access log line needs once the response is done.
#[derive(Debug)]
pub struct PendingLog {
    /// The connection the request came on.
    pub conn: Arc<ConnectionContext>,
    /// The upstream endpoint that answered, if one did.
    pub upstream: Option<SocketAddr>,
    /// The request as the workload sent it.
    pub request: RequestRecord,
    /// The status sent to the workload.
    pub status: http::StatusCode,
    /// Flags gathered so far.
    pub flags: ResponseFlags,
    /// The authorization decision, when policies applied.
    pub authz: Option<crate::authz::Decision>,
}

/// The response body sent to the workload. Writes the `request complete`
/// line exactly once: when the body ends, or when hyper drops it (sent in
/// full, or the workload went away).
pub struct LoggedBody {
    inner: ProxyBody,
    log: Option<PendingLog>,
}

impl LoggedBody {
    /// Wraps `inner`; `log` is written when it is done.
    pub fn new(inner: ProxyBody, log: PendingLog) -> Self {
        LoggedBody {
            inner,
            log: Some(log),
        }
    }

    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            access_log::request_complete(
                &log.conn,
                log.upstream,
                &log.request,
                log.status,
                log.flags,
                log.authz.as_ref(),
            );
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => {
                // The upstream went away mid-body: the workload gets a
                // truncated response, and the log says why.
                if let Some(log) = self.log.as_mut() {
                    log.flags
                        .insert(ResponseFlag::UpstreamConnectionTermination);
                }
            }
            Poll::Ready(None) => self.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

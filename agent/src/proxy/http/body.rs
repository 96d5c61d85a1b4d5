//! Body types of the HTTP path: one boxed streaming body both ways, and the
//! response body that writes the request's access log line when it is done
//! and ends a response that stalls for the stream idle timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{sleep, Instant, Sleep};

use crate::proxy::access_log::{self, ConnectionLog, RequestRecord};
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
    /// What the connection's request lines share.
    pub shared: Arc<ConnectionLog>,
    /// The upstream endpoint that answered, if one did.
    pub upstream: Option<SocketAddr>,
    /// The request as the workload sent it.
    pub request: RequestRecord,
    /// The status sent to the workload.
    pub status: http::StatusCode,
    /// Flags gathered so far.
    pub flags: ResponseFlags,
    /// The authorization decision, when policies applied.
    pub authz: Option<crate::authz::PolicyDecision>,
}

/// A response that stopped moving for the stream idle timeout (Envoy
/// resets such a stream once its headers are out).
#[derive(Debug, thiserror::Error)]
#[error("no response bytes for the stream idle timeout of {0:?}")]
pub struct StreamIdle(Duration);

/// The response body sent to the workload. Writes the `request complete`
/// line exactly once: when the body ends, or when hyper drops it (sent in
/// full, or the workload went away). A body with no frame for
/// `idle_timeout` ends in an error, which resets the stream (`SI`).
pub struct LoggedBody {
    inner: ProxyBody,
    log: Option<PendingLog>,
    idle_timeout: Duration,
    idle: Option<Pin<Box<Sleep>>>,
}

impl LoggedBody {
    /// Wraps `inner`; `log` is written when it is done; zero `idle_timeout`
    /// lets the body wait forever.
    pub fn new(inner: ProxyBody, log: PendingLog, idle_timeout: Duration) -> Self {
        LoggedBody {
            inner,
            log: Some(log),
            idle_timeout,
            idle: None,
        }
    }

    /// Whether the body has waited the whole idle timeout (arms it lazily).
    fn idled(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle_timeout.is_zero() {
            return false;
        }
        let timer = self
            .idle
            .get_or_insert_with(|| Box::pin(sleep(self.idle_timeout)));
        timer.as_mut().poll(cx).is_ready()
    }

    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            access_log::request_complete(
                &log.conn,
                &log.shared,
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
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                // The upstream went away mid-body: the workload gets a
                // truncated response, and the log says why.
                if let Some(log) = self.log.as_mut() {
                    log.flags
                        .insert(ResponseFlag::UpstreamConnectionTermination);
                }
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                let limit = self.idle_timeout;
                if let Some(timer) = self.idle.as_mut() {
                    timer.as_mut().reset(Instant::now() + limit);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending if self.idled(cx) => {
                if let Some(log) = self.log.as_mut() {
                    log.flags.insert(ResponseFlag::StreamIdleTimeout);
                }
                Poll::Ready(Some(Err(Box::new(StreamIdle(self.idle_timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
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

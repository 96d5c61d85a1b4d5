//! The workload side of one HTTP connection: the first bytes pick HTTP/1.1
//! or HTTP/2 (prior knowledge), hyper serves it under the [`Limits`], and
//! whatever the HTTP/1.1 [`Guard`] refused gets egret's own reply (Envoy's
//! status and wording, `server: istio-envoy`, a `request complete` line and
//! its metric). An HTTP/2 connection with no request in flight for the idle
//! timeout is drained (GOAWAY). When a config change takes the connection's
//! service away, or the process drains on shutdown, it is wound down
//! gracefully: HTTP/1.1 after the response in flight (`connection: close`;
//! at once when idle), HTTP/2 with GOAWAY.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use futures::future::{FusedFuture, FutureExt};
use http::Method;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::h1::guard::{Guard, SniffedProtocol, Stop};
use super::h1::head::{HeadError, Summary};
use super::reply::LocalReply;
use super::{handle, Connection};
use crate::proxy::access_log::{self, RequestRecord};
use crate::proxy::flags::{ResponseFlag, ResponseFlags};
use crate::proxy::limits::Limits;
use crate::proxy::outcome::{ConnectionOutcome, Failure};
use crate::proxy::recheck::Revoked;

/// hyper's buffer must hold a head the guard let through, and then some.
const H1_BUF_MARGIN: usize = 16 * 1024;
/// HPACK counts 32 bytes per field besides name and value (RFC 7541
/// section 4.1); h2 refuses a header block only past this allowance, so a
/// request within egret's limits always reaches egret's own check.
const H2_FIELD_OVERHEAD: usize = 32;

/// Serves `downstream` until the workload is done, or until `gone`
/// resolves and the connection has been wound down; always one outcome.
pub(super) async fn run<S>(
    state: Arc<Connection>,
    downstream: S,
    gone: impl Future<Output = Revoked>,
) -> ConnectionOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.ctx.limits;
    let mut outcome = ConnectionOutcome::default();
    let mut guard = Guard::new(downstream, &limits);
    let mut gone = Gone::new(gone);
    match guard.sniff().await {
        Err(e) => {
            let (io, stop) = guard.into_parts();
            answer_stop(&state, io, stop, &mut outcome).await;
            if outcome.error().is_none() && e.kind() != std::io::ErrorKind::UnexpectedEof {
                outcome.fail(Failure::unflagged(e));
            }
        }
        Ok(SniffedProtocol::Http1) => {
            serve_h1(&state, guard, &limits, &mut gone, &mut outcome).await
        }
        Ok(SniffedProtocol::Http2) => {
            serve_h2(&state, guard, &limits, &mut gone, &mut outcome).await
        }
    }
    if let Some(revoked) = gone.revoked.take() {
        outcome.fail(Failure::of(&revoked));
    }
    outcome.upstream = state.upstream.last_addr();
    outcome
}

/// The config-change watch of one connection, and what it said once it did.
struct Gone<F> {
    watch: Pin<Box<F>>,
    revoked: Option<Revoked>,
}

impl<F: Future<Output = Revoked>> Gone<F> {
    fn new(watch: F) -> Self {
        Gone {
            watch: Box::pin(watch),
            revoked: None,
        }
    }

    /// Ready (once) when the connection's service or port is taken away.
    fn poll_revoked(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.revoked.is_some() {
            return Poll::Pending;
        }
        match self.watch.as_mut().poll(cx) {
            Poll::Ready(revoked) => {
                self.revoked = Some(revoked);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn serve_h1<S, F>(
    state: &Arc<Connection>,
    guard: Guard<S>,
    limits: &Limits,
    gone: &mut Gone<F>,
    outcome: &mut ConnectionOutcome,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = Revoked>,
{
    let service = {
        let state = state.clone();
        // Boxed: the connection is polled in place (poll_without_shutdown).
        service_fn(move |request| Box::pin(handle(state.clone(), request)))
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        // Pipelined requests get their responses flushed together.
        .pipeline_flush(true)
        // hyper must not read ahead while a response is in flight: the
        // guard decides what comes next, and says so by ending the stream.
        .half_close(true)
        .header_read_timeout(None)
        .max_buf_size((limits.max_request_headers_bytes + H1_BUF_MARGIN).max(400 * 1024));
    // The guard enforces the limit; hyper's own (100 by default) must not be lower.
    if limits.max_request_headers > 100 {
        builder.max_headers(limits.max_request_headers);
    }
    let mut conn = builder.serve_connection(TokioIo::new(guard), service);
    let mut drain = draining(state);
    let served = std::future::poll_fn(|cx| {
        // The response in flight goes out with `connection: close`; an
        // idle connection closes at once.
        if gone.poll_revoked(cx).is_ready() {
            tracing::debug!(src = %state.conn.src, "closing an HTTP connection after a config change");
            Pin::new(&mut conn).graceful_shutdown();
        }
        if !drain.is_terminated() && drain.poll_unpin(cx).is_ready() {
            tracing::debug!(src = %state.conn.src, "closing an HTTP connection: draining");
            Pin::new(&mut conn).graceful_shutdown();
        }
        conn.poll_without_shutdown(cx)
    })
    .await;
    match served {
        Ok(()) => {
            let parts = conn.into_parts();
            let (io, stop) = parts.io.into_inner().into_parts();
            answer_stop(state, io, stop, outcome).await;
        }
        Err(e) => {
            // The guard passes only heads hyper accepts; what is left is a
            // body that broke its framing, or a workload that went away.
            let protocol = e.is_parse()
                || std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData);
            outcome.fail(downstream_failure(&e, protocol));
        }
    }
}

async fn serve_h2<S, F>(
    state: &Arc<Connection>,
    guard: Guard<S>,
    limits: &Limits,
    gone: &mut Gone<F>,
    outcome: &mut ConnectionOutcome,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = Revoked>,
{
    let (busy_tx, busy_rx) = watch::channel(0usize);
    let busy_tx = Arc::new(busy_tx);
    let service = {
        let state = state.clone();
        service_fn(move |request| {
            let token = Busy::start(busy_tx.clone());
            let served = handle(state.clone(), request);
            async move {
                let response = served.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked { body, token }))
            }
        })
    };
    let header_list =
        limits.max_request_headers_bytes + H2_FIELD_OVERHEAD * (limits.max_request_headers + 4);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX));
    let conn = builder.serve_connection(TokioIo::new(guard), service);
    tokio::pin!(conn);
    let idle = idle_for(busy_rx, limits.idle_timeout);
    tokio::pin!(idle);
    let mut drain = draining(state);
    let mut draining = false;
    let served = loop {
        tokio::select! {
            // Streams already open finish; GOAWAY refuses new ones.
            biased;
            served = conn.as_mut() => break served,
            () = std::future::poll_fn(|cx| gone.poll_revoked(cx)), if !draining => {
                tracing::debug!(src = %state.conn.src, "closing an HTTP/2 connection after a config change");
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = &mut idle, if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = &mut drain, if !draining => {
                tracing::debug!(src = %state.conn.src, "closing an HTTP/2 connection: draining");
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    };
    if let Err(e) = served {
        outcome.fail(downstream_failure(&e, e.is_parse()));
    }
}

/// Resolves (once) when the process starts draining.
fn draining(state: &Connection) -> Pin<Box<impl FusedFuture<Output = ()>>> {
    let drain = state.ctx.drain.clone();
    Box::pin(async move { drain.signaled().await }.fuse())
}

/// A workload connection hyper gave up on: `DPE` when what the workload
/// sent did not parse (`protocol`), else the peer's business (no flag).
fn downstream_failure(e: &hyper::Error, protocol: bool) -> Failure {
    if protocol {
        Failure::flagged(ResponseFlag::DownstreamProtocolError, e)
    } else {
        Failure::unflagged(e)
    }
}

/// Writes the reply to what the guard stopped on, logs it as a request, and
/// closes the stream.
async fn answer_stop<S: AsyncWrite + Unpin>(
    state: &Connection,
    mut io: S,
    stop: Option<Stop>,
    outcome: &mut ConnectionOutcome,
) {
    let (reply, summary, why) = match stop {
        Some(Stop::Refused { error, summary }) => {
            let reply = refusal_reply(&error);
            (reply, summary, format!("request refused: {error}"))
        }
        Some(Stop::HeaderTimeout { summary }) => (
            LocalReply::request_header_timeout(),
            summary,
            "request headers did not arrive in time".to_string(),
        ),
        Some(Stop::Idle) => {
            outcome.fail(Failure::unflagged("idle timeout"));
            let _ = io.shutdown().await;
            return;
        }
        None => {
            let _ = io.shutdown().await;
            return;
        }
    };
    tracing::debug!(src = %state.conn.src, reason = %why, status = %reply.status, "HTTP/1.1 request refused");
    let flags = reply.flag.map(ResponseFlags::from).unwrap_or_default();
    log_refused(state, &summary, &reply, flags);
    outcome.fail(reply.failure(why));
    let _ = io.write_all(&wire(&reply)).await;
    let _ = io.shutdown().await;
}

/// Envoy's answer to each kind of refused head.
fn refusal_reply(error: &HeadError) -> LocalReply {
    match error {
        HeadError::Malformed(_) => LocalReply::bad_request(),
        HeadError::TooLarge { .. } | HeadError::TooMany { .. } => {
            LocalReply::header_fields_too_large()
        }
        HeadError::UnsupportedTransferEncoding(_) => LocalReply::not_implemented(),
    }
}

/// The `request complete` line (and its metric) of a refused head.
fn log_refused(state: &Connection, summary: &Summary, reply: &LocalReply, flags: ResponseFlags) {
    let record = RequestRecord {
        method: summary
            .method
            .as_deref()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or_else(|| Method::from_bytes(b"-").expect("`-` is a token")),
        path: summary.target.clone().unwrap_or_else(|| "-".into()),
        host: summary.host.clone(),
        user_agent: summary.user_agent.clone(),
        protocol: "HTTP1",
        started: Instant::now(),
    };
    access_log::request_complete(
        &state.conn,
        &state.log,
        None,
        &record,
        reply.status,
        flags,
        None,
    );
}

/// A local reply as HTTP/1.1 bytes, Envoy's headers included; the
/// connection closes after it.
fn wire(reply: &LocalReply) -> Vec<u8> {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\ndate: {date}\r\nserver: istio-envoy\r\nconnection: close\r\n\r\n",
        reply.status.as_u16(),
        reply.status.canonical_reason().unwrap_or(""),
        reply.body.len(),
    )
    .into_bytes();
    out.extend_from_slice(reply.body.as_bytes());
    out
}

/// Resolves once no request has been in flight for `limit` (never when 0).
async fn idle_for(mut busy: watch::Receiver<usize>, limit: std::time::Duration) {
    if limit.is_zero() {
        return std::future::pending().await;
    }
    loop {
        if busy.wait_for(|n| *n == 0).await.is_err() {
            return std::future::pending().await;
        }
        tokio::select! {
            () = tokio::time::sleep(limit) => return,
            changed = busy.changed() => if changed.is_err() {
                return std::future::pending().await;
            },
        }
    }
}

/// One request in flight, counted until its response body is done.
struct Busy(Arc<watch::Sender<usize>>);

impl Busy {
    fn start(count: Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        Busy(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked<B> {
    body: B,
    #[allow(dead_code)] // held for its Drop
    token: Busy,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_replies_go_out_as_envoy_sends_them() {
        let text = String::from_utf8(wire(&LocalReply::bad_request())).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        for line in [
            "content-length: 11\r\n",
            "content-type: text/plain\r\n",
            "server: istio-envoy\r\n",
            "connection: close\r\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert!(text.ends_with("\r\n\r\nBad Request"));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_means_no_request_for_the_whole_timeout() {
        let (tx, rx) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let busy = Busy::start(tx.clone());
        let started = tokio::time::Instant::now();
        let waiting = tokio::spawn(idle_for(rx, std::time::Duration::from_secs(60)));
        tokio::time::sleep(std::time::Duration::from_secs(100)).await;
        assert!(!waiting.is_finished(), "a request is in flight");
        let tracked = Tracked {
            body: http_body_util::Empty::<bytes::Bytes>::new(),
            token: busy,
        };
        drop(tracked);
        waiting.await.unwrap();
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(160));
    }
}

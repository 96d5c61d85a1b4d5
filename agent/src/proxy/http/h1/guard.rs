//! The workload's byte stream as hyper's HTTP/1.1 server reads it, with each
//! request head held back until [`head::parse`] has accepted it whole. A
//! refused head (or one that takes longer than the request headers timeout)
//! never reaches hyper: hyper reads end-of-stream instead, finishes the
//! response in flight, and the server writes egret's own reply
//! ([`Stop`]). Bodies are followed ([`Body`]) so the next head is known to
//! start where hyper will look for it. A connection that stays idle between
//! requests is closed after the idle timeout.
//!
//! The first bytes decide the protocol ([`Guard::sniff`]): HTTP/2's preface
//! switches the guard to passing bytes through (h2 enforces its own limits).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

use super::framing::Body;
use super::head::{self, HeadError, Parsed, Summary};
use super::limits::HeadLimits;
use crate::proxy::limits::Limits;

/// HTTP/2's connection preface (RFC 9113 section 3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes asked of the workload per read while a head is incomplete.
const READ_CHUNK: usize = 8 * 1024;

/// The protocol the first bytes announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SniffedProtocol {
    /// HTTP/1.x (or nothing yet decisive: the guard judges the head).
    Http1,
    /// The HTTP/2 preface.
    Http2,
}

/// Why the guard stopped feeding hyper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A head was refused.
    Refused {
        /// Why.
        error: HeadError,
        /// What could be read of it, for the log.
        summary: Summary,
    },
    /// A head did not arrive whole within the request headers timeout.
    HeaderTimeout {
        /// What had arrived of it.
        summary: Summary,
    },
    /// No request for the idle timeout.
    Idle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a head.
    Head,
    /// Inside a body.
    Body(Body),
    /// HTTP/2: everything goes through.
    Passthrough,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    Idle,
    Headers,
}

/// See the module documentation.
pub struct Guard<S> {
    inner: S,
    limits: HeadLimits,
    headers_timeout: Duration,
    idle_timeout: Duration,
    /// Received and not yet given to hyper.
    buf: Vec<u8>,
    /// How many leading bytes of `buf` hyper may have.
    ready: usize,
    /// How far `buf` was searched for the end of a head: a head sent byte
    /// by byte is parsed once, not once per byte.
    scanned: usize,
    state: State,
    timer: Option<(TimerKind, Pin<Box<Sleep>>)>,
    stop: Option<Stop>,
    eof: bool,
}

impl<S> Guard<S> {
    /// Guards `inner` under `limits`.
    pub fn new(inner: S, limits: &Limits) -> Self {
        Guard {
            inner,
            limits: HeadLimits::from(limits),
            headers_timeout: limits.request_headers_timeout,
            idle_timeout: limits.idle_timeout,
            buf: Vec::new(),
            ready: 0,
            scanned: 0,
            state: State::Head,
            timer: None,
            stop: None,
            eof: false,
        }
    }

    /// Why the guard stopped feeding hyper, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The stream, for the reply after hyper is done, and the stop reason.
    pub fn into_parts(self) -> (S, Option<Stop>) {
        (self.inner, self.stop)
    }

    /// Arms the timer that applies now; `true` when it has fired.
    fn timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        let (kind, limit) = if self.buf.is_empty() {
            (TimerKind::Idle, self.idle_timeout)
        } else {
            (TimerKind::Headers, self.headers_timeout)
        };
        if limit.is_zero() {
            self.timer = None;
            return false;
        }
        if self.timer.as_ref().is_none_or(|(k, _)| *k != kind) {
            self.timer = Some((kind, Box::pin(sleep(limit))));
        }
        let Some((_, timer)) = self.timer.as_mut() else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.timer = None;
        self.stop = Some(match kind {
            TimerKind::Idle => Stop::Idle,
            TimerKind::Headers => Stop::HeaderTimeout {
                summary: Summary::of(&self.buf),
            },
        });
        true
    }

    /// Judges the buffered bytes of a head once they hold its end (or are
    /// over the size limit); `true` when that changed state.
    fn judge_head(&mut self) -> bool {
        let start = self.scanned.saturating_sub(3);
        self.scanned = self.buf.len();
        let ended = self.buf[start..]
            .windows(2)
            .any(|w| w == b"\n\n" || w == b"\n\r");
        if !ended && self.buf.len() <= self.limits.max_bytes {
            return false;
        }
        match head::parse(&self.buf, &self.limits) {
            Ok(Parsed::Partial) => false,
            Ok(Parsed::Complete(h)) => {
                self.scanned = 0;
                self.timer = None;
                self.ready = h.len;
                self.state = State::Body(Body::start(h.body));
                true
            }
            Err(error) => {
                let summary = Summary::of(&self.buf);
                self.buf.clear();
                self.stop = Some(Stop::Refused { error, summary });
                true
            }
        }
    }
}

impl<S: AsyncRead + Unpin> Guard<S> {
    /// Reads until the first bytes tell HTTP/2's preface from anything else.
    /// On `Err` the connection is over before any request (the reason is in
    /// [`Guard::stop`] when a timer ended it).
    pub async fn sniff(&mut self) -> io::Result<SniffedProtocol> {
        loop {
            let n = self.buf.len().min(H2_PREFACE.len());
            if self.buf[..n] != H2_PREFACE[..n] {
                return Ok(SniffedProtocol::Http1);
            }
            if n == H2_PREFACE.len() {
                self.state = State::Passthrough;
                self.ready = self.buf.len();
                return Ok(SniffedProtocol::Http2);
            }
            let mut chunk = [0u8; 64];
            let read = std::future::poll_fn(|cx| {
                if self.timer_fired(cx) {
                    return Poll::Ready(Ok(None));
                }
                let mut rb = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
                Poll::Ready(Ok::<_, io::Error>(Some(rb.filled().len())))
            })
            .await?;
            match read {
                None => return Err(io::Error::new(io::ErrorKind::TimedOut, "no request")),
                Some(0) if self.buf.is_empty() => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"))
                }
                // A partial preface then EOF: let the head reader refuse it.
                Some(0) => {
                    self.eof = true;
                    return Ok(SniffedProtocol::Http1);
                }
                Some(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads more of a head into `buf`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Read into spare capacity: zeroing READ_CHUNK bytes per read showed
        // in the waypoint's profile.
        self.buf.reserve(READ_CHUNK);
        let start = self.buf.len();
        let mut rb = ReadBuf::uninit(self.buf.spare_capacity_mut());
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut rb);
        let n = rb.filled().len();
        // SAFETY: `ReadBuf` counts as filled only bytes that were written,
        // so the first `n` spare bytes are initialised.
        unsafe { self.buf.set_len(start + n) };
        ready!(polled)?;
        if n == 0 {
            self.eof = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Body bytes straight into hyper's buffer; anything past the body's end
    /// is kept back for the next head.
    fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        mut body: Body,
    ) -> Poll<io::Result<()>> {
        let before = out.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, out))?;
        let got = &out.filled()[before..];
        if got.is_empty() {
            self.eof = true;
            return Poll::Ready(Ok(()));
        }
        let used = body
            .advance(got, self.limits.max_bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if used < got.len() {
            self.buf.extend_from_slice(&got[used..]);
            out.set_filled(before + used);
        }
        self.state = if body.is_done() {
            State::Head
        } else {
            State::Body(body)
        };
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.drain(..n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if this.stop.is_some() {
                // End of stream for hyper: it finishes what is in flight.
                return Poll::Ready(Ok(()));
            }
            match this.state {
                State::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, out),
                State::Body(Body::Done) => this.state = State::Head,
                State::Body(mut body) => {
                    if this.buf.is_empty() {
                        if this.eof {
                            return Poll::Ready(Ok(()));
                        }
                        let before = out.filled().len();
                        ready!(this.poll_body(cx, out, body))?;
                        if out.filled().len() > before || this.eof {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    this.ready = body
                        .advance(&this.buf, this.limits.max_bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    this.state = State::Body(body);
                }
                State::Head => {
                    if this.judge_head() {
                        continue;
                    }
                    if this.eof {
                        return Poll::Ready(Ok(()));
                    }
                    if this.timer_fired(cx) {
                        continue;
                    }
                    ready!(this.poll_fill(cx))?;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Reads a whole stream through a guard, as a test client of it would.
#[cfg(test)]
pub(crate) async fn read_all<S: AsyncRead + Unpin>(guard: &mut Guard<S>) -> io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    guard.read_to_end(&mut out).await?;
    Ok(out)
}

#[cfg(test)]
mod tests;

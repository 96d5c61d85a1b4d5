//! One HTTP/2 CONNECT stream as a byte stream (`AsyncRead + AsyncWrite`), so
//! the proxy's L4 copy and L7 server run on it as on a TCP socket.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The two halves of a CONNECT stream.
pub struct H2Stream {
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// Received data not yet read.
    pending: Bytes,
    /// END_STREAM sent.
    closed: bool,
    /// Held while the stream lives (a pooled connection counts its streams
    /// by these).
    _lease: Option<Arc<dyn Any + Send + Sync>>,
}

impl H2Stream {
    /// Joins the halves of one stream.
    pub fn new(recv: RecvStream, send: SendStream<Bytes>) -> Self {
        H2Stream {
            recv,
            send,
            pending: Bytes::new(),
            closed: false,
            _lease: None,
        }
    }

    /// Keeps `lease` alive as long as the stream.
    pub fn with_lease(mut self, lease: Arc<dyn Any + Send + Sync>) -> Self {
        self._lease = Some(lease);
        self
    }

    /// The next bytes received, as h2 holds them (no copy); empty at the
    /// end of the stream.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Ok(std::mem::take(&mut self.pending)));
        }
        loop {
            match ready!(self.recv.poll_data(cx)) {
                None => return Poll::Ready(Ok(Bytes::new())),
                Some(Ok(data)) => {
                    // Give the window back as soon as the bytes are ours.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    if !data.is_empty() {
                        return Poll::Ready(Ok(data));
                    }
                }
                // The peer ended the stream without an error: that is EOF.
                Some(Err(e)) if e.reason() == Some(Reason::NO_ERROR) => {
                    return Poll::Ready(Ok(Bytes::new()))
                }
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }

    /// Sends the front of `chunk` (as much as flow control allows, no copy)
    /// and advances it past what was sent.
    pub fn poll_send(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes) -> Poll<io::Result<()>> {
        if chunk.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let n = ready!(self.poll_room(cx, chunk.len()))?;
        self.send
            .send_data(chunk.split_to(n), false)
            .map_err(to_io)?;
        Poll::Ready(Ok(()))
    }

    /// Ends the sending half (END_STREAM); again is a no-op.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.closed {
            self.closed = true;
            self.send.send_data(Bytes::new(), true).map_err(to_io)?;
        }
        Ok(())
    }

    /// Waits for send capacity, up to `want` bytes (at least one).
    fn poll_room(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        self.send.reserve_capacity(want);
        match ready!(self.send.poll_capacity(cx)) {
            Some(Ok(0)) | None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Some(Ok(n)) => Poll::Ready(Ok(n.min(want))),
            Some(Err(e)) => Poll::Ready(Err(to_io(e))),
        }
    }
}

fn to_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::other("h2 I/O error"));
    }
    match e.reason() {
        Some(Reason::CANCEL) | Some(Reason::STREAM_CLOSED) => {
            io::Error::new(io::ErrorKind::BrokenPipe, e)
        }
        _ => io::Error::new(io::ErrorKind::ConnectionReset, e),
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            // Empty again means EOF: nothing is put in `buf`.
            self.pending = ready!(self.poll_chunk(cx))?;
        }
        let n = buf.remaining().min(self.pending.len());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(self.poll_room(cx, buf.len()))?;
        self.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2 sends queued frames from the connection task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish())
    }
}

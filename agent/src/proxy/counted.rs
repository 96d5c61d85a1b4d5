//! Byte counting on the workload's side of a connection, for the access
//! log's `bytes_sent` (workload -> upstream) and `bytes_recv` (back).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::hbone::splice::Tunnel;

/// Bytes moved over one downstream connection so far.
#[derive(Debug, Default)]
pub struct ByteCounters {
    sent: AtomicU64,
    recv: AtomicU64,
}

impl ByteCounters {
    /// Bytes the workload sent (read from its socket).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes the workload received (written to its socket).
    pub fn recv(&self) -> u64 {
        self.recv.load(Ordering::Relaxed)
    }
}

/// A stream that counts what is read from and written to it.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    counters: Arc<ByteCounters>,
}

impl<S> Counted<S> {
    /// Wraps `inner`, adding to `counters`.
    pub fn new(inner: S, counters: Arc<ByteCounters>) -> Self {
        Counted { inner, counters }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.counters.recv.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.counters.recv.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A counted CONNECT stream: received bytes are what the workload sent,
/// sent bytes what it received (as for a socket).
impl<T: Tunnel> Tunnel for Counted<T> {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        let res = self.inner.poll_chunk(cx);
        if let Poll::Ready(Ok(chunk)) = &res {
            self.counters
                .sent
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        res
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes) -> Poll<io::Result<()>> {
        let before = chunk.len();
        let res = self.inner.poll_send(cx, chunk);
        let n = before - chunk.len();
        self.counters.recv.fetch_add(n as u64, Ordering::Relaxed);
        res
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_both_directions() {
        let (a, mut b) = tokio::io::duplex(64);
        let counters = Arc::new(ByteCounters::default());
        let mut a = Counted::new(a, counters.clone());
        a.write_all(b"hello").await.unwrap();
        b.write_all(b"hi!").await.unwrap();
        let mut buf = [0u8; 3];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!((counters.sent(), counters.recv()), (3, 5));
    }

    /// A tunnel that yields `recv` once and takes up to 3 bytes a send.
    struct FakeTunnel {
        recv: Option<Bytes>,
        sent: Vec<u8>,
    }

    impl Tunnel for FakeTunnel {
        fn poll_chunk(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
            Poll::Ready(Ok(self.recv.take().unwrap_or_default()))
        }

        fn poll_send(&mut self, _cx: &mut Context<'_>, chunk: &mut Bytes) -> Poll<io::Result<()>> {
            let n = chunk.len().min(3);
            self.sent.extend_from_slice(&chunk.split_to(n));
            Poll::Ready(Ok(()))
        }

        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counts_a_tunnel_as_a_socket() {
        let counters = Arc::new(ByteCounters::default());
        let inner = FakeTunnel {
            recv: Some(Bytes::from_static(b"from the workload")),
            sent: Vec::new(),
        };
        let mut t = Counted::new(inner, counters.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let Poll::Ready(Ok(got)) = t.poll_chunk(&mut cx) else {
            panic!("chunk expected")
        };
        assert_eq!(got.len(), 17);
        let mut answer = Bytes::from_static(b"hello");
        let _ = t.poll_send(&mut cx, &mut answer);
        // Only what the tunnel took counts; the rest is still to send.
        assert_eq!((counters.sent(), counters.recv()), (17, 3));
        assert_eq!(&answer[..], b"lo");
    }
}

//! Bytes carried between a plain stream (TCP) and a CONNECT stream without
//! an intermediate buffer: what is read from the plain side is handed to h2
//! as it was read, and what h2 received is written out as h2 holds it.
//! `tokio::io::copy_bidirectional` would copy every byte once more through
//! its own buffer (and `Bytes::copy_from_slice` on the h2 side).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::stream::H2Stream;

/// Largest read from the plain side: one DATA frame (the peer accepts up to
/// 1 MiB). Measured against ztunnel with its own client (bulk, CPU per
/// GiB at the server): 64 KiB 1.3x and 256 KiB 1.1-1.2x the CPU of
/// 512 KiB, which matched the stock ztunnel's.
pub const READ_CHUNK: usize = 512 * 1024;
/// The first reads of a connection are small: most connections are short,
/// and an idle one should not hold a large buffer.
const FIRST_READ: usize = 16 * 1024;
/// Bytes moved before reads grow to [`READ_CHUNK`].
const GROW_AFTER: u64 = 1024 * 1024;

/// A CONNECT stream as [`splice`] drives it, byte counting included.
pub trait Tunnel: Unpin {
    /// The next bytes received; empty at the end.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>>;
    /// Sends the front of `chunk`, advancing it past what was sent.
    fn poll_send(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes) -> Poll<io::Result<()>>;
    /// Ends the sending half.
    fn finish(&mut self) -> io::Result<()>;
}

impl Tunnel for H2Stream {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        H2Stream::poll_chunk(self, cx)
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes) -> Poll<io::Result<()>> {
        H2Stream::poll_send(self, cx, chunk)
    }

    fn finish(&mut self) -> io::Result<()> {
        H2Stream::finish(self)
    }
}

/// Plain side to tunnel.
#[derive(Default)]
struct Outward {
    buf: BytesMut,
    /// Read, not yet sent.
    chunk: Bytes,
    moved: u64,
    done: bool,
}

impl Outward {
    fn poll<P, T>(
        &mut self,
        cx: &mut Context<'_>,
        plain: &mut P,
        tunnel: &mut T,
    ) -> Poll<io::Result<()>>
    where
        P: AsyncRead + Unpin,
        T: Tunnel,
    {
        while !self.done {
            if self.chunk.is_empty() {
                let want = if self.moved < GROW_AFTER {
                    FIRST_READ
                } else {
                    READ_CHUNK
                };
                // Reuses the allocation once h2 has let go of what it sent.
                self.buf.reserve(want);
                let n = ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut *plain),
                    cx,
                    &mut self.buf
                ))?;
                if n == 0 {
                    tunnel.finish()?;
                    self.done = true;
                    break;
                }
                self.moved += n as u64;
                self.chunk = self.buf.split().freeze();
            }
            ready!(tunnel.poll_send(cx, &mut self.chunk))?;
        }
        Poll::Ready(Ok(()))
    }
}

/// Tunnel to plain side.
#[derive(Default)]
struct Inward {
    /// Received, not yet written.
    chunk: Bytes,
    /// Written since the last flush.
    unflushed: bool,
    done: bool,
}

impl Inward {
    fn poll<P, T>(
        &mut self,
        cx: &mut Context<'_>,
        plain: &mut P,
        tunnel: &mut T,
    ) -> Poll<io::Result<()>>
    where
        P: AsyncWrite + Unpin,
        T: Tunnel,
    {
        while !self.done {
            if self.chunk.is_empty() {
                let chunk = match tunnel.poll_chunk(cx) {
                    Poll::Ready(c) => c?,
                    Poll::Pending => {
                        // Nothing more for now: push out what was written.
                        if self.unflushed {
                            ready!(Pin::new(&mut *plain).poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                };
                if chunk.is_empty() {
                    ready!(Pin::new(&mut *plain).poll_shutdown(cx))?;
                    self.done = true;
                    break;
                }
                self.chunk = chunk;
            }
            let n = ready!(Pin::new(&mut *plain).poll_write(cx, &self.chunk))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let _ = self.chunk.split_to(n);
            self.unflushed = true;
        }
        Poll::Ready(Ok(()))
    }
}

/// Carries bytes both ways until both directions have ended; each side's
/// end is passed on to the other (plain EOF -> END_STREAM, END_STREAM ->
/// shutdown of the plain side's write half) while the other direction keeps
/// flowing, as `copy_bidirectional` does. The first error ends both.
pub async fn splice<P, T>(plain: &mut P, tunnel: &mut T) -> io::Result<()>
where
    P: AsyncRead + AsyncWrite + Unpin,
    T: Tunnel,
{
    let mut outward = Outward::default();
    let mut inward = Inward::default();
    poll_fn(|cx| {
        let out = outward.poll(cx, plain, tunnel)?;
        let back = inward.poll(cx, plain, tunnel)?;
        if out.is_ready() && back.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A CONNECT-like stream over in-memory HTTP/2: (client side, server side).
    async fn h2_pair() -> (H2Stream, H2Stream) {
        let (c, s) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            let mut conn = h2::server::handshake(s).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            let send = respond
                .send_response(http::Response::new(()), false)
                .unwrap();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            H2Stream::new(req.into_body(), send)
        });
        let (client, conn) = h2::client::handshake(c).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let req = http::Request::connect("10.0.0.1:80").body(()).unwrap();
        let (resp, send) = client.send_request(req, false).unwrap();
        let server = server.await.unwrap();
        let resp = resp.await.unwrap();
        (H2Stream::new(resp.into_body(), send), server)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Splices `tunnel` to one end of a duplex; the other end is returned.
    fn spliced(mut tunnel: H2Stream) -> (DuplexStream, tokio::task::JoinHandle<io::Result<()>>) {
        let (mut plain, outside) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move { splice(&mut plain, &mut tunnel).await });
        (outside, task)
    }

    #[tokio::test]
    async fn carries_megabytes_both_ways_intact_with_half_close() {
        let (client, server) = h2_pair().await;
        let (outside, task) = spliced(server);
        // Past GROW_AFTER, so the large reads are exercised too.
        let up = pattern(3 * 1024 * 1024 + 17);
        let down = pattern(5 * 1024 * 1024 + 3);

        let (mut out_r, mut out_w) = tokio::io::split(outside);
        let (mut cli_r, mut cli_w) = tokio::io::split(client);
        let (down2, up2) = (down.clone(), up.clone());
        // Each side writes all, then closes its sending half (plain EOF ->
        // END_STREAM, END_STREAM -> shutdown) while still reading the other.
        let plain_writes = tokio::spawn(async move {
            out_w.write_all(&down2).await.unwrap();
            out_w.shutdown().await.unwrap();
        });
        let client_writes = tokio::spawn(async move {
            cli_w.write_all(&up2).await.unwrap();
            cli_w.shutdown().await.unwrap();
        });
        let plain_reads = tokio::spawn(async move {
            let mut got = Vec::new();
            out_r.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut at_client = Vec::new();
        cli_r.read_to_end(&mut at_client).await.unwrap();
        assert!(at_client == down, "plain -> client bytes differ");
        assert!(
            plain_reads.await.unwrap() == up,
            "client -> plain bytes differ"
        );
        plain_writes.await.unwrap();
        client_writes.await.unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn one_direction_closed_the_other_keeps_flowing() {
        let (client, server) = h2_pair().await;
        let (outside, task) = spliced(server);
        let (mut out_r, mut out_w) = tokio::io::split(outside);
        let (mut cli_r, mut cli_w) = tokio::io::split(client);
        // The client is done sending at once: the plain side sees EOF ...
        cli_w.shutdown().await.unwrap();
        let mut none = Vec::new();
        out_r.read_to_end(&mut none).await.unwrap();
        assert!(none.is_empty());
        // ... and can still answer.
        out_w.write_all(b"late answer").await.unwrap();
        out_w.shutdown().await.unwrap();
        let mut got = Vec::new();
        cli_r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"late answer");
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_reset_stream_is_an_error() {
        let (client, server) = h2_pair().await;
        let (_outside, task) = spliced(server);
        drop(client); // RST_STREAM (CANCEL) to the server side
        assert!(task.await.unwrap().is_err());
    }
}

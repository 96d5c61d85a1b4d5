//! DNS over TCP: the 2-byte length framing (RFC 1035 4.2.2) and the server
//! loop, several queries per connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{DnsError, DnsProxy, Transport};

/// A connection with no new query for this long is closed (RFC 7766 asks
/// servers to reclaim idle connections).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once per listener; more are refused until some end.
const MAX_CONNECTIONS: usize = 256;

/// Reads one length-prefixed message; `None` on a clean EOF between messages.
pub(crate) async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

/// Writes one length-prefixed message in a single write, so the length and
/// the message leave in one segment.
pub(crate) async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "DNS message over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(2 + message.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    stream.write_all(&frame).await
}

impl DnsProxy {
    /// Serves DNS over TCP (2-byte length framing, several queries per
    /// connection) on an already-bound listener.
    pub async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        workload: Arc<str>,
    ) -> Result<(), DnsError> {
        // Dropping this future drops the set, which aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if connections.len() >= MAX_CONNECTIONS {
                            debug!(%workload, %peer, "too many DNS/TCP connections, refusing");
                            continue;
                        }
                        let proxy = Arc::clone(&self);
                        connections.spawn(proxy.serve_connection(stream, Arc::clone(&workload)));
                    }
                    Err(e) if is_transient(&e) => {
                        // Out of descriptors or a client gone before accept:
                        // back off briefly instead of spinning or giving up.
                        warn!(%workload, error = %e, "DNS/TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(source) => return Err(DnsError::Listener { transport: "tcp", source }),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }

    /// Answers queries on one connection, in order, until EOF, idleness or
    /// a message too broken to answer.
    async fn serve_connection(self: Arc<Self>, mut stream: TcpStream, workload: Arc<str>) {
        loop {
            let query = match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream)).await {
                Ok(Ok(Some(query))) => query,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    debug!(%workload, error = %e, "DNS/TCP read failed");
                    return;
                }
            };
            let Ok(reply) = self.answer_for(&query, Transport::Tcp, &workload).await else {
                return;
            };
            if let Err(e) = write_frame(&mut stream, &reply).await {
                debug!(%workload, error = %e, "DNS/TCP write failed");
                return;
            }
        }
    }
}

/// Accept errors that concern one connection or a passing shortage, not the
/// listener itself.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_eof_between_frames_is_clean() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, b"one").await.unwrap();
        write_frame(&mut a, b"").await.unwrap();
        drop(a);
        assert_eq!(read_frame(&mut b).await.unwrap().unwrap(), b"one");
        assert_eq!(read_frame(&mut b).await.unwrap().unwrap(), b"");
        assert!(read_frame(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 5, b'x']).await.unwrap();
        drop(a);
        assert!(read_frame(&mut b).await.is_err());
    }

    #[tokio::test]
    async fn oversized_messages_are_refused() {
        let (mut a, _b) = tokio::io::duplex(16);
        let err = write_frame(&mut a, &vec![0u8; 65_536]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}

//! Reading the ClientHello off the workload's connection: bytes are kept,
//! not consumed, so they can be sent upstream exactly as received.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::client_hello::{self, ClientHello, HelloError, MAX_HELLO_BYTES};

/// How long a workload may take to send its ClientHello (Envoy's listener
/// filter timeout).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// Why no ClientHello was read.
#[derive(Debug, thiserror::Error)]
pub enum ReadHelloError {
    /// The bytes are not a ClientHello the waypoint accepts.
    #[error("workload did not start with a valid TLS ClientHello: {0}")]
    Invalid(#[from] HelloError),
    /// The workload closed before the ClientHello was complete.
    #[error("workload closed after {0} bytes, before its ClientHello was complete")]
    Closed(usize),
    /// The ClientHello did not arrive in time.
    #[error("workload sent no complete ClientHello within {0:?}")]
    Timeout(Duration),
    /// Reading failed.
    #[error("reading the ClientHello from the workload: {0}")]
    Io(#[source] io::Error),
}

/// A ClientHello and every byte read to get it (to be forwarded first).
#[derive(Debug)]
pub struct ReadHello {
    /// What it says.
    pub hello: ClientHello,
    /// The bytes as received, possibly more than the hello itself.
    pub bytes: Vec<u8>,
}

/// Reads from `stream` until a whole ClientHello is in, at most
/// [`MAX_HELLO_BYTES`] bytes and `timeout` for all of it.
pub async fn read_client_hello<S>(
    stream: &mut S,
    timeout: Duration,
) -> Result<ReadHello, ReadHelloError>
where
    S: AsyncRead + Unpin,
{
    tokio::time::timeout(timeout, read_until_complete(stream))
        .await
        .map_err(|_| ReadHelloError::Timeout(timeout))?
}

async fn read_until_complete<S>(stream: &mut S) -> Result<ReadHello, ReadHelloError>
where
    S: AsyncRead + Unpin,
{
    let mut bytes = Vec::with_capacity(2048);
    loop {
        // Never read past the limit: a too-large hello fails in the parser
        // (its declared length), anything else is bounded here.
        let room = MAX_HELLO_BYTES - bytes.len();
        if room == 0 {
            return Err(HelloError::TooLarge(bytes.len()).into());
        }
        let n = (&mut *stream)
            .take(room as u64)
            .read_buf(&mut bytes)
            .await
            .map_err(ReadHelloError::Io)?;
        if n == 0 {
            return Err(ReadHelloError::Closed(bytes.len()));
        }
        if let Some(hello) = client_hello::parse(&bytes)? {
            return Ok(ReadHello { hello, bytes });
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A ClientHello for `a.test`, made by hand (no extensions but SNI).
    fn hello() -> Vec<u8> {
        let name = b"a.test";
        let mut ext = vec![
            0,
            0,
            0,
            (name.len() + 5) as u8,
            0,
            (name.len() + 3) as u8,
            0,
            0,
        ];
        ext.push(name.len() as u8);
        ext.extend_from_slice(name);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut out = vec![22, 3, 1];
        out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[tokio::test]
    async fn a_hello_trickling_in_byte_by_byte_is_read_whole() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let sent = hello();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for b in sent {
                    client.write_all(&[b]).await.unwrap();
                    tokio::task::yield_now().await;
                }
                client
            })
        };
        let read = read_client_hello(&mut server, HELLO_TIMEOUT).await.unwrap();
        assert_eq!(read.hello.server_name.as_deref(), Some("a.test"));
        assert_eq!(read.bytes, sent);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn garbage_fails_at_once() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let err = read_client_hello(&mut server, HELLO_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ReadHelloError::Invalid(HelloError::NotHandshake(b'G'))
        ));
    }

    #[tokio::test]
    async fn a_half_hello_then_close_is_reported() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&hello()[..20]).await.unwrap();
        drop(client);
        let err = read_client_hello(&mut server, HELLO_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, ReadHelloError::Closed(20)), "{err}");
    }

    #[tokio::test]
    async fn a_silent_workload_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&hello()[..3]).await.unwrap();
        let err = read_client_hello(&mut server, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, ReadHelloError::Timeout(_)), "{err}");
        drop(client);
    }

    #[tokio::test]
    async fn endless_small_records_stop_at_the_limit() {
        // Records of one handshake byte each never complete a large hello:
        // the declared length is within the limit, the framing is not.
        let (mut client, mut server) = tokio::io::duplex(MAX_HELLO_BYTES * 2);
        let mut flood = vec![22, 3, 1, 0, 4, 1, 0, 0x20, 0];
        while flood.len() < MAX_HELLO_BYTES + 100 {
            flood.extend_from_slice(&[22, 3, 1, 0, 1, 0]);
        }
        client.write_all(&flood).await.unwrap();
        let err = read_client_hello(&mut server, HELLO_TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ReadHelloError::Invalid(HelloError::TooLarge(_))),
            "{err}"
        );
    }
}
